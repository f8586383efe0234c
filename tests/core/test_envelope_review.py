"""A review of the envelope-fuzz fixes (5edf8fb..b87c00a): what they left open or broke.

Sections 1-6 are defects the review found (each failed then), with how to reproduce them under
the real gunicorn. Section 8 holds guards for fixes no test of the change exercised: each
fails when that fix is taken out (the mutation it names).
"""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml
from werkzeug.test import EnvironBuilder, run_wsgi_app

from auth.models import AccessToken
from core.db import db
from core.web import behind_proxies
from families.models import Family
from tests.conftest import assert_problem, audit_events, basic, bearer
from tests.gunicorn_support import as_gunicorn_serves, token_request
from tests.referrals.conftest import FULL, network, send

ROOT = Path(__file__).resolve().parents[2]


def tokens(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(AccessToken))


def _as_gunicorn_serves_on_a_unix_socket(app, raw: bytes):
    """As a worker bound to `unix:/run/imh/imh.sock` hands `raw` over."""
    return as_gunicorn_serves(app, raw, peer="", server="/run/imh/imh.sock")


@pytest.fixture
def proxied(app, monkeypatch):
    """The app behind one trusted reverse proxy (TRUSTED_PROXIES=1), restored afterwards."""
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", 1)
    behind_proxies(app)
    return app


# -- 1. gunicorn on a UNIX socket still believes forwarded headers (security) -------------------

@pytest.mark.parametrize("forwarded", [b"X-Forwarded-Ssl: on", b"X-Forwarded-Proto: https",
                                       b"X-Forwarded-Protocol: ssl"])
def test_on_a_unix_socket_no_forwarded_header_makes_plain_http_https(app, make, forwarded):
    """gunicorn.conf.py sets `forwarded_allow_ips = ""` and the README says gunicorn's own
    trust of forwarded headers is off, TRUSTED_PROXIES the one setting. But gunicorn trusts
    every peer that is not an (address, port) tuple, whatever forwarded_allow_ips says
    (gunicorn/http/message.py HeaderPolicy._peer_is_trusted_proxy): behind nginx on
    `BIND=unix:/run/imh.sock`, a client's `X-Forwarded-Ssl: on` passed on by the proxy makes
    plain http https, and /oauth/token issues a token for a secret sent in the clear.

    Reproduced with the real gunicorn: `BIND=unix:/tmp/imh.sock gunicorn -c gunicorn.conf.py
    app:app`, then `curl --unix-socket /tmp/imh.sock -H 'Host: imh.example.org' -H
    'X-Forwarded-Ssl: on' -u id:secret -d grant_type=client_credentials
    http://imh.example.org/oauth/token`: 200 with an access token (without the header: 400
    "Send OAuth requests over https")."""
    oauth_client, secret = make.client()
    before = tokens(app)

    environ, response = _as_gunicorn_serves_on_a_unix_socket(
        app, token_request(oauth_client.client_id, secret, forwarded))

    assert response.status_code == 400, response.get_data(as_text=True)
    assert tokens(app) == before
    assert environ["wsgi.url_scheme"] == "http"


def test_on_a_unix_socket_no_header_moves_the_path(app, make):
    """The same trust takes SCRIPT_NAME from a header: `GET /x/api/v1/me` with `SCRIPT_NAME:
    /x` is served as /api/v1/me (real gunicorn on a UNIX socket: 200)."""
    token = make.token(make.organization(), ["directory:read"])
    raw = (b"GET /x/api/v1/me HTTP/1.1\r\nHost: imh.example.org\r\nSCRIPT_NAME: /x\r\n"
           + f"Authorization: Bearer {token}\r\n\r\n".encode())

    environ, response = _as_gunicorn_serves_on_a_unix_socket(app, raw)

    assert response.status_code != 200, response.get_data(as_text=True)
    assert environ.get("SCRIPT_NAME", "") == ""


# -- 2. a forwarded "address" with an IPv6 zone is free text (security) ---------------------------

@pytest.mark.parametrize("forwarded", ["fe80::1%Amara Okafor born 2026-03-02",
                                       "::1%Ngozi Okafor +17345550101"])
def test_an_ipv6_zone_carries_no_text_into_the_trail(proxied, client, make, forwarded):
    """core/web.py `_addresses_only` keeps a forwarded address when `ipaddress.ip_address`
    reads it, and Python (3.9+) reads an IPv6 address with any zone after `%` (anything but
    `%` and `,`, spaces included): the child's name is written into the never-purged trail,
    which the fix meant to stop ("a forwarded address that is no IP address is not
    believed"). Under gunicorn with TRUSTED_PROXIES=1: `curl -H 'X-Forwarded-For: fe80::1%Amara
    Okafor born 2026-03-02' ...` and the event's request.ip is that text."""
    token = make.token(make.organization(), ["directory:read"])

    response = client.get("/api/v1/organizations/00000000-0000-4000-8000-000000000000",
                          headers={**bearer(token), "X-Forwarded-For": forwarded})

    assert response.status_code == 404
    with proxied.app_context():
        recorded = audit_events(outcome="deny")[-1].request_ip
    assert recorded is None or "%" not in recorded, recorded


# -- 3. HTTP/1.0 without Host: the metadata names no host (the fix's own case) -------------------

def test_the_metadata_names_a_host_for_an_http_1_0_request_without_one(client):
    """`_refuse_unreadable_envelope` lets an HTTP/1.0 request without Host through without
    looking at `request.host`: werkzeug then builds the host from SERVER_NAME/PORT, which a
    UNIX-socket bind gives as the socket's path and no port, so `request.host` is empty and
    the metadata answers `"issuer": "http://"`, `"token_endpoint": "http:///oauth/token"`,
    `Cache-Control: public, max-age=3600` - what test_the_metadata_never_names_an_issuer_
    without_a_host was written against. Real gunicorn: `BIND=unix:/tmp/imh.sock`, then
    `printf 'GET /.well-known/oauth-authorization-server HTTP/1.0\\r\\n\\r\\n' | nc -U
    /tmp/imh.sock`."""
    environ = EnvironBuilder("/.well-known/oauth-authorization-server").get_environ()
    del environ["HTTP_HOST"]
    environ.update(SERVER_PROTOCOL="HTTP/1.0", SERVER_NAME="/run/imh/imh.sock",
                   SERVER_PORT="")

    body, status, headers = run_wsgi_app(client.application, environ, buffered=True)
    response = client.application.response_class(b"".join(body), status, headers)

    if response.status_code == 200:
        assert urlsplit(response.json["issuer"]).hostname, response.json
    else:
        assert_problem(response, 400, "malformed-request")


# -- 4. a forwarded scheme in upper case is refused on every route (regression) -------------------

@pytest.mark.parametrize("path", ["/api/v1/me", "/.well-known/oauth-authorization-server"])
def test_a_forwarded_scheme_in_upper_case_is_still_https(proxied, client, make, path):
    """A URI scheme is case-insensitive (RFC 3986 3.1). Behind a trusted proxy that sends
    `X-Forwarded-Proto: HTTPS`, ProxyFix sets wsgi.url_scheme to `HTTPS`, and
    `_refuse_unreadable_envelope` (`request.scheme not in ("http", "https")`) answers every
    route 400 "The forwarded scheme is neither http nor https". Before acf09b3 both
    answered 200."""
    token = make.token(make.organization(), ["directory:read"])

    response = client.get(path, headers={**bearer(token), "X-Forwarded-Proto": "HTTPS"})

    assert response.status_code == 200, response.get_data(as_text=True)


# -- 5. a Host with an empty port is refused on every route (regression) --------------------------

@pytest.mark.parametrize("host", ["imh.example.org:", "127.0.0.1:08000"])
def test_a_valid_host_with_an_empty_or_zero_padded_port_is_served(client, make, host):
    """RFC 3986 3.2.3: `port = *DIGIT` (an empty port, RFC 9110 4.2.3: the scheme's default;
    leading zeros allowed). werkzeug's stricter reading empties such a Host, which only the
    OAuth endpoints refused before; `_refuse_unreadable_envelope` now refuses it on every
    route (the API builds no URL from it). 200 before acf09b3, 400 now."""
    token = make.token(make.organization(), ["directory:read"])

    response = client.get("/api/v1/me", headers={**bearer(token), "Host": host})

    assert response.status_code == 200, response.get_data(as_text=True)


# -- 6. the OpenAPI document does not say what the new refusals answer (docs) ----------------------

def _documented(path: str, method: str) -> dict:
    document = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
    return {str(code): answer for code, answer in document["paths"][path][method]["responses"]
            .items()}


@pytest.mark.parametrize(("path", "openapi_path"), [
    ("/api/v1/me", "/api/v1/me"),
    ("/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server")])
def test_a_refused_host_is_a_status_the_operation_documents(client, make, path, openapi_path):
    """README: a Host that is no host name (or none, over HTTP/1.1) is 400 on every route; the
    OpenAPI document listed no 400 for the GET operations nor for the metadata."""
    token = make.token(make.organization(), ["directory:read"])

    response = client.get(path, headers={**bearer(token), "Host": "[::1"})

    assert response.status_code == 400
    assert "400" in _documented(openapi_path, "get")


@pytest.mark.parametrize(("host", "media_type"), [
    ("imh_web:8000", "application/json"), ("[::1", "application/problem+json")])
def test_a_refused_host_at_the_token_endpoint_answers_as_the_document_says(
        app, client, make, host, media_type):
    """A valid Host werkzeug reads no host name in (`imh_web:8000`) is the token endpoint's
    to refuse, as an OAuth 2 error (RFC 6749 5.2); a Host that is none is refused on every
    route, as a problem, before OAuth reads anything. The document says both."""
    oauth_client, secret = make.client()

    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={**basic(oauth_client.client_id, secret), "Host": host},
                           base_url="https://imh.example.org")

    assert response.status_code == 400
    assert response.mimetype == media_type
    assert media_type in _documented("/oauth/token", "post")["400"]["content"]
    assert tokens(app) == 0


# -- 8. guards: fixes no test of the change notices being taken out (pass on b87c00a) -------------

def test_guard_if_none_match_on_a_family_patch(app, client, make):
    """Mutation that survived tests/core/test_envelope_fuzz.py and tests/families/: in
    families/service.py update_family, `check_preconditions(Preconditions(
    preconditions.if_match), ...)` (If-None-Match dropped). Only the organization PATCH was
    tested."""
    clinic = make.organization(type="pediatric_primary_care")
    token = make.token(clinic, ["families:read", "families:write"])
    family = make.family(clinic)
    etag = client.get(f"/api/v1/families/{family.id}", headers=bearer(token)).headers["ETag"]

    response = client.patch(f"/api/v1/families/{family.id}",
                            json={"interpreter_needed": False},
                            headers={**bearer(token), "If-None-Match": etag})

    assert_problem(response, 412, "precondition-failed")
    with app.app_context():
        assert db.session.get(Family, family.id).interpreter_needed is not False


def test_guard_if_none_match_on_a_transition(client, make):
    """The same mutation in referrals/service.py transition_referral survived every test."""
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    sent = send(client, net)
    rid, etag = sent.json["id"], sent.headers["ETag"]

    response = client.post(f"/api/v1/referrals/{rid}/transitions", json={"status": "accepted"},
                           headers={**net.as_provider, "If-Match": etag,
                                    "If-None-Match": f"W/{etag}"})

    assert_problem(response, 412, "precondition-failed")
    assert client.get(f"/api/v1/referrals/{rid}",
                      headers=net.as_provider).json["status"] == "requested"


@pytest.mark.parametrize("scheme", ["javascript", "ftp"])
def test_guard_a_forwarded_scheme_that_is_no_http_names_nothing(proxied, client, scheme):
    """Mutation that survived tests/core/ and tests/auth/: `if request.scheme not in ("http",
    "https")` in core/web.py `_refuse_unreadable_envelope` replaced by `if False` (no test
    sends another X-Forwarded-Proto): the metadata then names `javascript://localhost`."""
    response = client.get("/.well-known/oauth-authorization-server",
                          headers={"X-Forwarded-Proto": scheme})

    assert_problem(response, 400, "malformed-request")
