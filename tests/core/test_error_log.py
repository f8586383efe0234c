"""gunicorn's error log (the service's standard error) names a request gunicorn refuses by its
peer and the kind of error, never by what the client sent: gunicorn's warning quoted the whole
request line, query string included, or the header line it could not read, so a token put in
the query or a header line such as `Bearer <token>` reached the log, a review found."""

from types import SimpleNamespace

import pytest

from tests.gunicorn_support import LOOPBACK, gunicorn_config, gunicorn_logger

pytestmark = pytest.mark.no_db
TOKEN = "t0ken-SECRET-zzq1"
HEAD = b"Host: imh.example.org\r\n"


def _error_log(tmp_path, raw: bytes, *, peer=LOOPBACK) -> str:
    """What gunicorn writes to its error log when it refuses `raw`: its own parser's exception,
    handled as its workers handle one (the 400 to the client is written to nowhere)."""
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader
    from gunicorn.workers.base import Worker

    config = gunicorn_config()
    log_file = tmp_path / "error.log"
    config.set("errorlog", str(log_file))
    with pytest.raises(Exception) as refused:  # noqa: B017 (whichever gunicorn raises)
        Request(config, IterUnreader([raw]), peer)
    with gunicorn_logger(config) as logger:
        Worker.handle_error(SimpleNamespace(log=logger, cfg=config), None, None, peer,
                            refused.value)
    return log_file.read_text(encoding="utf-8")


@pytest.mark.parametrize(("raw", "kind"), [
    # A control byte in the target, or a byte beyond ASCII (an unencoded name).
    (f"GET /api/v1/me?access_token={TOKEN}\x01 HTTP/1.1\r\n".encode() + HEAD + b"\r\n",
     "Invalid HTTP request line"),
    (f"GET /api/v1/organizations?q={TOKEN}".encode() + b"Pe\xc3\xb1a HTTP/1.1\r\n" + HEAD
     + b"\r\n", "Invalid HTTP request line"),
    # A header line without its name, a header name with a control byte in it.
    (b"GET /api/v1/me HTTP/1.1\r\n" + HEAD + f"Bearer {TOKEN}\r\n\r\n".encode(),
     "Invalid HTTP Header"),
    (b"GET /api/v1/me HTTP/1.1\r\n" + HEAD + f"{TOKEN}\x01: x\r\n\r\n".encode(),
     "Invalid HTTP header name"),
    # Header values gunicorn quotes: a transfer coding, an expectation.
    (b"POST /api/v1/families HTTP/1.1\r\n" + HEAD
     + f"Transfer-Encoding: {TOKEN}, chunked\r\n\r\n".encode(), "Unsupported transfer coding"),
    (b"GET /api/v1/me HTTP/1.1\r\n" + HEAD + f"Expect: {TOKEN}\r\n\r\n".encode(),
     "Unable to comply with expectation"),
], ids=["control-byte-in-target", "utf8-in-target", "header-line-without-name",
        "control-byte-in-header-name", "transfer-coding", "expect"])
def test_a_refused_request_is_logged_without_what_it_sent(tmp_path, raw, kind):
    log = _error_log(tmp_path, raw)

    assert TOKEN not in log, log
    assert f"Invalid request from ip=127.0.0.1: {kind}" in log, log
    assert len(log.splitlines()) == 1, log


def test_a_refusal_names_an_ipv6_peer_whole(tmp_path):
    raw = b"GET /api/v1/me HTTP/1.1\r\n" + HEAD + f"Bearer {TOKEN}\r\n\r\n".encode()

    log = _error_log(tmp_path, raw, peer=("2001:db8::7", 50123, 0, 0))

    assert TOKEN not in log
    assert "Invalid request from ip=2001:db8::7: Invalid HTTP Header" in log, log


def test_a_request_the_worker_failed_on_is_named_without_its_query(tmp_path):
    """gunicorn names the request it failed to answer (a response it could not write) by its
    method and target, query string included."""
    config = gunicorn_config()
    config.set("errorlog", str(tmp_path / "error.log"))
    with gunicorn_logger(config) as logger:
        try:
            raise OSError("the client went away")
        except OSError:
            logger.exception("Error handling request %s %s", "GET",
                             f"/api/v1/me?access_token={TOKEN}")
            logger.exception(OSError("not a message"))
    log = (tmp_path / "error.log").read_text(encoding="utf-8")

    assert TOKEN not in log
    assert "Error handling request GET /api/v1/me\n" in log, log
    assert "not a message" in log


def test_a_request_head_cut_short_is_not_repeated_at_debug_level(tmp_path):
    """At `--log-level debug` gunicorn logs a client's disconnection with what it had sent of
    the request's head."""
    from gunicorn.http.errors import NoMoreData

    config = gunicorn_config()
    config.set("errorlog", str(tmp_path / "error.log"))
    config.set("loglevel", "debug")
    with gunicorn_logger(config) as logger:
        logger.debug("Ignored premature client disconnection. %s",
                     NoMoreData(f"GET /api/v1/me?access_token={TOKEN} HTTP/1.1\r\n".encode()))
    log = (tmp_path / "error.log").read_text(encoding="utf-8")

    assert TOKEN not in log
    assert "Ignored premature client disconnection. NoMoreData" in log, log
