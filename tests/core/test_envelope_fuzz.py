"""The HTTP envelope, as a black-box fuzz of the served service (gunicorn.conf.py, raw sockets)
found it: what schemathesis never varies (Host, X-Forwarded-*, framing, Content-Encoding,
conditional headers, header repetition, path spelling, methods).

Each test is one defect the fuzz met. Where gunicorn hands the app something the test client
would not (a short body, two header lines joined by a comma, its own reading of forwarded
headers), the test builds it as gunicorn does, and says so.
"""

import runpy
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.test import EnvironBuilder, run_wsgi_app

from auth.models import AccessToken
from core.db import db
from tests.conftest import assert_problem, basic, bearer

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = "/api/v1/families"


@pytest.fixture
def custodian(make):
    organization = make.organization(type="pediatric_primary_care")
    return make.token(organization, ["families:read", "families:write"])


def tokens(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(AccessToken))


# -- 1. gunicorn believes forwarded headers from the loopback whatever TRUSTED_PROXIES says ------

def _gunicorn_config():
    """gunicorn's settings as the service's gunicorn.conf.py makes them (as gunicorn loads a
    config file: each module-level name that is a setting)."""
    from gunicorn.config import Config

    config = Config()
    for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    return config


def _as_gunicorn_serves(app, raw: bytes, peer=("127.0.0.1", 50123)):
    """`raw` parsed by gunicorn's own parser and WSGI environ, under the service's gunicorn
    settings, from a peer on the loopback (a reverse proxy on the same host: the default BIND
    is 127.0.0.1), then answered by the app."""
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader
    from gunicorn.http.wsgi import create

    config = _gunicorn_config()
    parsed = Request(config, IterUnreader([raw]), peer)
    _, environ = create(parsed, None, peer, ("127.0.0.1", 8000), config)
    body, status, headers = run_wsgi_app(app, environ, buffered=True)
    return environ, app.response_class(b"".join(body), status, headers)


@pytest.mark.parametrize("forwarded", [b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: on",
                                       b"X-Forwarded-Protocol: ssl"])
def test_without_trusted_proxies_no_forwarded_header_makes_plain_http_https(
        app, make, forwarded):
    """README: TRUSTED_PROXIES 0 (the default) ignores X-Forwarded-Proto, "as anyone could
    write" it, and plain http to OAuth is 400. But gunicorn itself believes X-Forwarded-Proto,
    -Ssl and -Protocol from 127.0.0.1 and ::1 (its defaults `forwarded_allow_ips` and
    `secure_scheme_headers`, which gunicorn.conf.py leaves alone): through a proxy on the same
    host that passes a client's `X-Forwarded-Ssl: on` on (nginx passes headers it does not set),
    a client secret sent over plain http was answered with a token."""
    oauth_client, secret = make.client()
    before = tokens(app)
    form = b"grant_type=client_credentials"
    raw = (b"POST /oauth/token HTTP/1.1\r\nHost: imh.example.org\r\n"
           + f"Authorization: {basic(oauth_client.client_id, secret)['Authorization']}\r\n"
           .encode()
           + b"Content-Type: application/x-www-form-urlencoded\r\n" + forwarded + b"\r\n"
           + b"Content-Length: %d\r\n\r\n" % len(form) + form)

    environ, response = _as_gunicorn_serves(app, raw)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_request"
    assert tokens(app) == before
    assert environ["wsgi.url_scheme"] == "http"


def test_without_trusted_proxies_no_header_moves_the_path(app, make):
    """The same default trust lets a `SCRIPT_NAME` header from the loopback cut a prefix off
    the path: `GET /x/api/v1/me` with `SCRIPT_NAME: /x` was served as /api/v1/me."""
    token = make.token(make.organization(), ["directory:read"])
    raw = (b"GET /x/api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nSCRIPT_NAME: /x\r\n"
           + f"Authorization: Bearer {token}\r\n\r\n".encode())

    environ, response = _as_gunicorn_serves(app, raw)

    assert_problem(response, 404, "not-found")
    assert environ.get("SCRIPT_NAME", "") == ""


# -- 2. the Host header ----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["imh_web:8000", "[::1", "imh.example.org:abc",
                                  "127.0.0.1, evil.example"])
def test_the_metadata_never_names_an_issuer_without_a_host(client, host):
    """A Host werkzeug cannot read (it empties it) gave 200 with `"issuer": "http://"` and
    `"token_endpoint": "http:///oauth/token"`, marked `Cache-Control: public, max-age=3600`,
    while the endpoints it names refuse that same Host (400 `invalid_request`). RFC 8414 2:
    the issuer is a URL with a host; RFC 9112 3.2: an invalid Host is 400."""
    response = client.get("/.well-known/oauth-authorization-server", headers={"Host": host})

    assert response.status_code == 400, response.get_data(as_text=True)
    assert "issuer" not in (response.json or {})
    assert "public" not in response.headers.get("Cache-Control", "")


def test_an_http_1_1_request_without_a_host_is_400(app, make):
    """RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host. gunicorn
    passes one on; werkzeug puts the server's bind address in its place, and it was served."""
    token = make.token(make.organization(), ["directory:read"])
    environ = EnvironBuilder("/api/v1/me", headers=bearer(token)).get_environ()
    del environ["HTTP_HOST"]
    environ["SERVER_PROTOCOL"] = "HTTP/1.1"

    body, status, headers = run_wsgi_app(app, environ, buffered=True)
    response = app.response_class(b"".join(body), status, headers)

    assert_problem(response, 400, "malformed-request")


# -- 5. path spelling ---------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1//me"), ("POST", "/api/v1//families"), ("GET", "/api/v1//organizations")])
def test_an_empty_path_segment_is_not_redirected_as_an_html_page(client, custodian, method,
                                                                  path):
    """werkzeug merges slashes by redirecting: 308 with an HTML body (the API answers JSON),
    before authentication, a POST included, and a Location built from the Host header (the
    caller's own Host reflected; `http:///api/...` when werkzeug cannot read it)."""
    response = client.open(path, method=method, headers={**bearer(custodian),
                                                           "Host": "evil.example"})

    assert response.status_code not in (301, 302, 307, 308), response.headers.get("Location")
    assert response.mimetype in ("application/json", "application/problem+json")


@pytest.mark.parametrize("path", ["/api/v1/organizations%2F{id}", "/api/v1%2Fme",
                                  "/api/v1%2Forganizations", "/api/v1%2forganizations%2F{id}"])
def test_an_encoded_slash_is_not_a_path_separator(client, make, path):
    """gunicorn decodes PATH_INFO, `%2F` included, so `/api/v1/organizations%2F<id>` was the
    listing and `/api/v1/referrals/<id>%2Fevents` the timeline: URIs RFC 3986 2.2 says are not
    those (an encoded reserved character is data), which a proxy's per-path rule would let
    through as something else. The raw request target (RAW_URI, gunicorn's and the test
    client's) keeps the `%2F`."""
    organization = make.organization()
    token = make.token(organization, ["directory:read"])

    response = client.get(path.format(id=organization.id), headers=bearer(token))

    assert_problem(response, 404, "not-found")


# -- 6. methods ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/organizations", FAMILIES])
def test_options_does_not_offer_head_the_api_refuses(client, path):
    """Flask's automatic OPTIONS answered `Allow: GET, OPTIONS, HEAD` (and a 200 text/html),
    while HEAD on the API is 405, whose own Allow leaves HEAD out."""
    allowed = {m.strip() for m in client.options(path).headers["Allow"].split(",")}
    refused = client.head(path)

    assert refused.status_code == 405
    assert "HEAD" not in allowed
    assert allowed == {m.strip() for m in refused.headers["Allow"].split(",")} | {"OPTIONS"}
