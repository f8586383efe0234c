"""gunicorn's access log (GUNICORN_ACCESS_LOG) keeps the path and the request id, never what
a client sent as a secret: gunicorn's default line held the Basic user (a secret sent in the
client id's place) and the query string (a token or a secret put there), a review found."""

import base64
from datetime import timedelta
from types import SimpleNamespace

import pytest

from tests.gunicorn_support import as_gunicorn_serves, gunicorn_config

SECRET = "s3cr3t-pasted-as-the-client-id"
TOKEN = "t0ken-put-in-the-query"


@pytest.mark.no_db
def test_an_access_log_line_holds_no_secret_nor_token(app, tmp_path):
    from gunicorn.glogging import Logger

    config = gunicorn_config()
    log_file = tmp_path / "access.log"
    config.set("accesslog", str(log_file))
    basic = base64.b64encode(f"{SECRET}:x".encode()).decode()
    raw = (f"GET /api/v1/me?access_token={TOKEN}&client_secret={SECRET} HTTP/1.1\r\n"
           f"Host: imh.example.org\r\nAuthorization: Basic {basic}\r\n"
           "X-Request-ID: req-42\r\n\r\n").encode()
    environ, response = as_gunicorn_serves(app, raw)
    logger = Logger(config)

    logger.access(SimpleNamespace(status=response.status, headers=list(response.headers.items()),
                                  sent=len(response.get_data())),
                  SimpleNamespace(headers=[("AUTHORIZATION", f"Basic {basic}")]), environ,
                  timedelta(milliseconds=7))
    for handler in logger.access_log.handlers:
        handler.flush()

    line = log_file.read_text()
    assert SECRET not in line and TOKEN not in line and basic not in line
    assert '"GET /api/v1/me HTTP/1.1"' in line
    assert line.rstrip().endswith(f"{response.status_code} {len(response.get_data())} 7ms req-42")
