"""Requests as gunicorn hands them to the service: its own parser and WSGI environ, under the
service's gunicorn.conf.py (what the test client cannot show: gunicorn's reading of forwarded
headers, of the peer, of the server's address)."""

import runpy
from contextlib import contextmanager
from pathlib import Path

from werkzeug.test import run_wsgi_app

from tests.conftest import basic

GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
#: A reverse proxy on the same host (the default BIND is 127.0.0.1).
LOOPBACK = ("127.0.0.1", 50123)


def gunicorn_config():
    """gunicorn's settings as gunicorn.conf.py makes them (as gunicorn loads a config file:
    each module-level name that is a setting)."""
    from gunicorn.config import Config

    config = Config()
    for name, value in runpy.run_path(str(GUNICORN_CONF)).items():
        if name in config.settings:
            config.set(name, value)
    return config


@contextmanager
def gunicorn_logger(config):
    """The logger gunicorn makes from `config` (its `logger_class`), its log files flushed and
    closed on the way out (gunicorn's loggers are global, and a file left open is a warning)."""
    logger = config.logger_class(config)
    try:
        yield logger
    finally:
        for log in (logger.error_log, logger.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
                handler.close()
            log.propagate = True  # as before gunicorn's logger turned it off


def as_gunicorn_serves(app, raw: bytes, *, peer=LOOPBACK, server=("127.0.0.1", 8000)):
    """`raw` parsed and handed over as a gunicorn worker does, then answered by the app: its
    environ and the response. On a UNIX socket the peer is `""` (what accept() gives) and the
    server's address the socket's path."""
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader
    from gunicorn.http.wsgi import create

    config = gunicorn_config()
    parsed = Request(config, IterUnreader([raw]), peer)
    _, environ = create(parsed, None, peer, server, config)
    body, status, headers = run_wsgi_app(app, environ, buffered=True)
    return environ, app.response_class(b"".join(body), status, headers)


def token_request(client_id: str, secret: str, header: bytes) -> bytes:
    """A client-credentials token request over plain http with one more header line."""
    form = b"grant_type=client_credentials"
    return (b"POST /oauth/token HTTP/1.1\r\nHost: imh.example.org\r\n"
            + f"Authorization: {basic(client_id, secret)['Authorization']}\r\n".encode()
            + b"Content-Type: application/x-www-form-urlencoded\r\n" + header + b"\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(form) + form)
