"""gunicorn's access log (GUNICORN_ACCESS_LOG) keeps the path and the request id, never what
a client sent as a secret: gunicorn's default line held the Basic user (a secret sent in the
client id's place) and the query string (a token or a secret put there), a review found. Each
request is one line: `%(U)s` was the percent-decoded path, so a `%0a` in it wrote a second line
of the caller's choosing, and a `%00` a NUL (another review)."""

import base64
from datetime import timedelta
from types import SimpleNamespace

import pytest

from tests.gunicorn_support import (
    LOOPBACK,
    as_gunicorn_serves,
    gunicorn_config,
    gunicorn_logger,
)

SECRET = "s3cr3t-pasted-as-the-client-id"
TOKEN = "t0ken-put-in-the-query"


def _access_log(app, tmp_path, raw: bytes, request_headers=(), ms=1) -> str:
    """What the logger gunicorn.conf.py names writes to the access log for `raw`, answered."""
    config = gunicorn_config()
    log_file = tmp_path / "access.log"
    config.set("accesslog", str(log_file))
    environ, response = as_gunicorn_serves(app, raw)
    with gunicorn_logger(config) as logger:
        logger.access(SimpleNamespace(status=response.status,
                                      headers=list(response.headers.items()),
                                      sent=len(response.get_data())),
                      SimpleNamespace(headers=list(request_headers)), environ,
                      timedelta(milliseconds=ms))
    return log_file.read_text(encoding="utf-8")


@pytest.mark.no_db
def test_an_access_log_line_holds_no_secret_nor_token(app, tmp_path):
    basic = base64.b64encode(f"{SECRET}:x".encode()).decode()
    raw = (f"GET /api/v1/me?access_token={TOKEN}&client_secret={SECRET} HTTP/1.1\r\n"
           f"Host: imh.example.org\r\nAuthorization: Basic {basic}\r\n"
           "X-Request-ID: req-42\r\n\r\n").encode()
    _, response = as_gunicorn_serves(app, raw)

    line = _access_log(app, tmp_path, raw, [("AUTHORIZATION", f"Basic {basic}")], ms=7)

    assert SECRET not in line and TOKEN not in line and basic not in line
    assert '"GET /api/v1/me HTTP/1.1"' in line
    assert line.rstrip().endswith(f"{response.status_code} {len(response.get_data())} 7ms req-42")


#: A whole access line of the caller's choosing, after a new line (`%0a`) in the path.
FORGED = ("%0a10.9.9.9%20%5B07%2FDec%2F2026%3A23%3A59%3A59%20%2B0000%5D%20%22GET%20%2Fapi"
          "%2Fv1%2Faudit%2Fexport%20HTTP%2F1.1%22%20200%2012345%205ms%20forged")


@pytest.mark.no_db
@pytest.mark.parametrize("path", [
    f"/api/v1/x{FORGED}",
    f"/api/v1/x%0d{FORGED}",
    "/api/v1/me%00",
    "/api/v1/me%0b%0c%1b%7f%c2%85%e2%80%a8",  # VT, FF, ESC, DEL, NEL, LINE SEPARATOR
    "/api/v1/organizations/Pe%C3%B1a%22%5C",  # a name, a double quote and a backslash
])
def test_an_access_log_line_is_one_line_with_the_path_as_sent(app, tmp_path, path):
    """The path is logged as the client sent it, still percent-encoded, without its query:
    decoded, a `%0a` began a line of the caller's own (a chosen peer, time, path and status),
    a `%00` wrote a NUL."""
    raw = f"GET {path}?access_token={TOKEN} HTTP/1.1\r\nHost: imh.example.org\r\n\r\n"

    log = _access_log(app, tmp_path, raw.encode())

    assert log.endswith("\n") and len(log.splitlines()) == 1, log
    assert log[:-1].isprintable(), log
    assert f'"GET {path} HTTP/1.1" 404 ' in log, log
    assert TOKEN not in log


@pytest.mark.no_db
def test_an_access_log_line_escapes_what_any_atom_holds(app, tmp_path):
    """Every atom is escaped, not the path alone: a header gunicorn lets pass may hold a C1
    control character (obs-text read as Latin-1), and a format may name it."""
    config = gunicorn_config()
    log_file = tmp_path / "access.log"
    config.set("accesslog", str(log_file))
    config.set("access_log_format", '%(h)s "%({user-agent}i)s" %(s)s')
    raw = b"GET /api/v1/x HTTP/1.1\r\nHost: imh.example.org\r\nUser-Agent: a\x85b\\\r\n\r\n"
    environ, response = as_gunicorn_serves(app, raw)
    environ["REMOTE_ADDR"] = "10.0.0.1\n10.6.6.6"
    with gunicorn_logger(config) as logger:
        logger.access(SimpleNamespace(status=response.status, headers=[], sent=0),
                      SimpleNamespace(headers=[("USER-AGENT", "a\x85b\\")]), environ,
                      timedelta(milliseconds=1))

    assert log_file.read_text(encoding="utf-8") == '10.0.0.1\\n10.6.6.6 "a\\x85b\\\\" 404\n'


@pytest.mark.no_db
def test_a_refused_request_is_logged_with_its_path_without_its_query(tmp_path):
    """A request gunicorn refuses after its request line (a header it cannot read) is on the
    access log too, with no PATH_INFO: its path as sent, without the query."""
    from gunicorn.http.errors import InvalidHeader
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader
    from gunicorn.workers.base import Worker

    config = gunicorn_config()
    log_file = tmp_path / "access.log"
    config.set("accesslog", str(log_file))
    config.set("errorlog", str(tmp_path / "error.log"))
    raw = (f"POST /api/v1/families?access_token={TOKEN} HTTP/1.1\r\nHost: imh.example.org\r\n"
           "Content-Length: 1\r\nContent-Length: 2\r\n\r\n{").encode()
    with pytest.raises(InvalidHeader) as refused:
        Request(config, IterUnreader([raw]), LOOPBACK)
    with gunicorn_logger(config) as logger:
        Worker.handle_error(SimpleNamespace(log=logger, cfg=config), None, None, LOOPBACK,
                            refused.value)

    log = log_file.read_text(encoding="utf-8")
    assert '"POST /api/v1/families HTTP/1.1" 400 ' in log, log
    assert TOKEN not in log
