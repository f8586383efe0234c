"""The HTTP envelope, as a black-box fuzz of the served service (gunicorn.conf.py, raw sockets)
found it: what schemathesis never varies (Host, X-Forwarded-*, framing, Content-Encoding,
conditional headers, header repetition, path spelling, methods).

Each test is one defect the fuzz met. Where gunicorn hands the app something the test client
would not (a short body, two header lines joined by a comma, its own reading of forwarded
headers), the test builds it as gunicorn does, and says so.
"""

import gzip
import ipaddress
import json

import pytest
import sqlalchemy as sa
from werkzeug.test import EnvironBuilder, run_wsgi_app

from auth.models import AccessToken
from core.db import db
from core.web import behind_proxies
from families.models import Family
from organizations.models import Organization
from tests.conftest import assert_problem, audit_events, basic, bearer
from tests.gunicorn_support import as_gunicorn_serves, token_request

FAMILIES = "/api/v1/families"
FAMILY = {
    "child": {"given_name": "Amara", "family_name": "Okafor", "birth_date": "2026-03-02",
              "county": "Washtenaw"},
    "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor", "relationship": "mother",
                    "has_legal_authority": True, "phone": "+17345550101"}],
    "preferred_language": "es", "interpreter_needed": True,
}


@pytest.fixture
def custodian(make):
    organization = make.organization(type="pediatric_primary_care")
    return make.token(organization, ["families:read", "families:write"])


def families(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Family))


def post_family(client, token, body: bytes, headers=None, **kwargs):
    return client.post(FAMILIES, data=body, headers={
        **bearer(token), "Content-Type": "application/json", **(headers or {})}, **kwargs)


def tokens(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(AccessToken))


# -- 1. gunicorn believes forwarded headers from the loopback whatever TRUSTED_PROXIES says ------

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

    environ, response = as_gunicorn_serves(
        app, token_request(oauth_client.client_id, secret, forwarded))

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

    environ, response = as_gunicorn_serves(app, raw)

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


# -- 3. Content-Encoding ------------------------------------------------------------------------

@pytest.mark.parametrize(("coding", "compress"), [
    ("gzip", False), ("br", False), ("x-unknown", False), ("gzip", True), ("deflate", False)])
def test_a_body_in_a_content_coding_the_service_does_not_decode_is_415(
        app, client, custodian, coding, compress):
    """Content-Encoding was never read: a body declared `br` (or gzip, or anything) was parsed
    as it came, and a family recorded from bytes the client said meant something else; a real
    gzip body was 400 "not valid JSON". RFC 9110 8.4 and 15.5.16: a content coding the server
    does not accept is 415 (with Accept-Encoding, RFC 7694 3)."""
    body, before = json.dumps(FAMILY).encode(), families(app)

    response = post_family(client, custodian, gzip.compress(body) if compress else body,
                           {"Content-Encoding": coding})

    assert_problem(response, 415, "unsupported-media-type")
    assert response.headers["Accept-Encoding"] == "identity"
    assert families(app) == before


def test_identity_content_coding_is_served(app, client, custodian):
    """Not a defect: what a fix of the one above must keep (`identity` is no coding)."""
    response = post_family(client, custodian, json.dumps(FAMILY).encode(),
                           {"Content-Encoding": "identity"})

    assert response.status_code == 201, response.get_data(as_text=True)


def test_a_token_request_in_a_content_coding_issues_nothing(app, client, make):
    """The same at the token endpoint: `Content-Encoding: br` over a plain form was answered
    with a token."""
    oauth_client, secret = make.client()
    before = tokens(app)

    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={**basic(oauth_client.client_id, secret),
                                    "Content-Encoding": "br"})

    assert response.status_code in (400, 415), response.get_data(as_text=True)
    assert "access_token" not in (response.json or {})
    assert tokens(app) == before


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
def test_introspection_and_revocation_in_a_content_coding_do_nothing(app, client, make,
                                                                    endpoint):
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    token = make.token(scopes=["directory:read"], oauth_client=oauth_client)

    response = client.post(endpoint, data={"token": token},
                           headers={**basic(oauth_client.client_id, secret),
                                    "Content-Encoding": "gzip"})

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_request"
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


# -- 4. a body shorter than its Content-Length ----------------------------------------------------

def test_a_body_shorter_than_its_content_length_is_not_acted_on(app, client, custodian):
    """A client that declares Content-Length N and hangs up after fewer bytes: gunicorn hands
    the app what came (`wsgi.input_terminated`, so werkzeug does not count), and the service
    recorded a family from an incomplete request. Built as gunicorn builds it: the stream
    ends early, CONTENT_LENGTH says more."""
    body, before = json.dumps(FAMILY).encode(), families(app)

    response = post_family(client, custodian, body, environ_overrides={
        "wsgi.input_terminated": True, "CONTENT_LENGTH": str(len(body) + 5)})

    assert_problem(response, 400, "malformed-request")
    assert families(app) == before


def test_a_token_request_shorter_than_its_content_length_issues_nothing(app, client, make):
    """The same for a form: `scope=...` cut short would issue a token of fewer scopes."""
    oauth_client, secret = make.client()
    form, before = b"grant_type=client_credentials&scope=directory:read", tokens(app)

    response = client.post("/oauth/token", data=form, headers={
        **basic(oauth_client.client_id, secret),
        "Content-Type": "application/x-www-form-urlencoded"}, environ_overrides={
        "wsgi.input_terminated": True, "CONTENT_LENGTH": str(len(form) + 9)})

    assert_problem(response, 400, "malformed-request")
    assert tokens(app) == before


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


@pytest.mark.parametrize("target", [b"//api/v1/me", b"///api/v1/me", b"//api/v1/audit/events",
                                    b"http://imh.example.org//api/v1/me"])
def test_a_leading_empty_segment_is_no_such_path(app, make, target):
    """werkzeug drops leading slashes: `//api/v1/audit/...` was served, past a proxy's rule
    for `/api/v1/audit`, and put on the trail as a path the access log does not show (a
    review). As `/api/v1//me` is, it is 404."""
    token = make.token(make.organization(), ["directory:read", "audit:read"])
    raw = (b"GET " + target + b" HTTP/1.1\r\nHost: imh.example.org\r\n"
           + f"Authorization: Bearer {token}\r\n\r\n".encode())

    _, response = as_gunicorn_serves(app, raw)

    assert_problem(response, 404, "not-found")


def _chunked_family(token: str, transfer_coding: bytes, body: bytes) -> bytes:
    return (b"POST /api/v1/families HTTP/1.1\r\nHost: imh.example.org\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: " + transfer_coding
            + b"\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")


@pytest.mark.parametrize(("coding", "compress"), [
    (b"gzip, chunked", False), (b"gzip, chunked", True), (b"deflate, chunked", False)])
def test_a_transfer_coding_besides_chunked_is_refused_not_read_as_it_came(
        app, custodian, coding, compress):
    """gunicorn takes the chunks off and leaves gzip or deflate on: a body so labelled was
    read as it came, and a plain one mislabelled created a family (a review)."""
    before = families(app)
    body = json.dumps(FAMILY).encode()

    _, response = as_gunicorn_serves(
        app, _chunked_family(custodian, coding, gzip.compress(body) if compress else body))

    assert_problem(response, 400, "malformed-request")
    assert "transfer coding" in response.json["detail"]
    assert families(app) == before


def test_a_chunked_body_is_read(app, custodian):
    before = families(app)
    _, response = as_gunicorn_serves(
        app, _chunked_family(custodian, b"chunked", json.dumps(FAMILY).encode()))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert families(app) == before + 1


@pytest.mark.parametrize("charset", ["iso-8859-1", "utf-16", "latin1"])
def test_a_body_in_another_charset_is_415(app, client, custodian, charset):
    """A declared charset was read as UTF-8 all the same: a Latin-1 `ñ` was a misleading
    'not valid JSON', and UTF-8 bytes meant as Latin-1 were stored as other letters."""
    before = families(app)
    response = client.post(FAMILIES, data=json.dumps(FAMILY).encode(),
                           headers={**bearer(custodian),
                                    "Content-Type": f"application/json; charset={charset}"})
    assert_problem(response, 415, "unsupported-media-type")
    assert families(app) == before


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"'])
def test_a_body_declared_utf_8_is_read(client, custodian, charset):
    response = client.post(FAMILIES, data=json.dumps(FAMILY).encode(),
                           headers={**bearer(custodian),
                                    "Content-Type": f"application/json; charset={charset}"})
    assert response.status_code == 201, response.get_data(as_text=True)


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



def test_options_answers_whatever_accept_says(client):
    """OPTIONS has no content to negotiate: it was 406 to an Accept that leaves out what the
    route's GET answers (found by a review)."""
    response = client.options("/api/v1/me", headers={"Accept": "text/html"})

    assert response.status_code == 204
    assert "GET" in response.headers["Allow"]

# -- 7. conditional requests ----------------------------------------------------------------------

def test_if_none_match_star_on_an_existing_listing_changes_nothing(app, client, make):
    """RFC 9110 13.1.2: `If-None-Match: *` is false for a resource that exists, and an origin
    server MUST NOT perform the method (412). The PATCH was performed."""
    organization = make.organization(accepting_referrals=False)
    token = make.token(organization, ["directory:read", "directory:write"])

    response = client.patch(f"/api/v1/organizations/{organization.id}",
                            json={"accepting_referrals": True},
                            headers={**bearer(token), "If-None-Match": "*"})

    assert_problem(response, 412, "precondition-failed")
    with app.app_context():
        assert db.session.get(Organization, organization.id).accepting_referrals is False



@pytest.mark.parametrize(("if_none_match", "status"), [
    ('"v1"', 412), ('W/"v1"', 412), ('"v9", "v1"', 412), ('"v9"', 200)])
def test_if_none_match_refuses_the_change_only_when_it_names_the_current_version(
        app, client, make, if_none_match, status):
    organization = make.organization(accepting_referrals=False)
    token = make.token(organization, ["directory:read", "directory:write"])

    response = client.patch(f"/api/v1/organizations/{organization.id}",
                            json={"accepting_referrals": True},
                            headers={**bearer(token), "If-None-Match": if_none_match})

    assert response.status_code == status, response.get_data(as_text=True)
    with app.app_context():
        changed = db.session.get(Organization, organization.id).accepting_referrals
    assert changed is (status == 200)

# -- 8. what reaches the audit trail ---------------------------------------------------------------

@pytest.mark.parametrize("forwarded", ["Amara Okafor 2026-03-02", "unknown", "%00",
                                       "[2001:db8::1]:443"])
def test_the_trail_records_an_address_or_nothing_from_x_forwarded_for(
        app, client, make, monkeypatch, forwarded):
    """Behind TRUSTED_PROXIES the trusted hop of X-Forwarded-For became `request.ip` as it
    came, any text up to 64 characters, into a trail that is never changed nor purged and
    must hold no names or free text (README). A proxy that passes a client's header on at the
    trusted hop, or TRUSTED_PROXIES set one higher than the proxies there are, lets a caller
    write a child's name into it. Only an address is an address."""
    token = make.token(make.organization(), ["directory:read"])
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)  # restored after the test
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", 1)
    behind_proxies(app)

    response = client.get("/api/v1/organizations/00000000-0000-4000-8000-000000000000",
                          headers={**bearer(token), "X-Forwarded-For": forwarded})

    assert response.status_code == 404
    with app.app_context():
        recorded = audit_events(outcome="deny")[-1].request_ip
    assert recorded != forwarded
    if recorded is not None:
        ipaddress.ip_address(recorded)


def test_two_idempotency_keys_are_refused(app, client, custodian):
    """gunicorn joins two `Idempotency-Key` lines with a comma (RFC 9110 5.3), and the key's
    pattern (visible ASCII) took `k1,k2` for one key: a request naming two keys recorded a
    family under a key it never sent, which a retry with either key does not find."""
    before = families(app)

    response = post_family(client, custodian, json.dumps(FAMILY).encode(),
                           {"Idempotency-Key": "intake-1,intake-2"})

    assert_problem(response, 422, "validation-error")
    assert families(app) == before



def test_a_forwarded_ip_address_is_recorded_as_one(app, client, make, monkeypatch):
    token = make.token(make.organization(), ["directory:read"])
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)  # restored after the test
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", 1)
    behind_proxies(app)

    client.get("/api/v1/organizations/00000000-0000-4000-8000-000000000000",
               headers={**bearer(token), "X-Forwarded-For": "198.51.100.7, 2001:DB8::1"})

    with app.app_context():
        assert audit_events(outcome="deny")[-1].request_ip == "2001:db8::1"

# -- 9. JSON that is not JSON -------------------------------------------------------------

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(client, custodian, literal):
    """RFC 8259 has no NaN or Infinity; Python's parser takes them. The README says a body
    that is not JSON is 400 `malformed-request`; these were read and answered 422."""
    body = json.dumps(FAMILY).replace('"interpreter_needed": true',
                                      f'"interpreter_needed": {literal}')

    response = post_family(client, custodian, body.encode())

    assert_problem(response, 400, "malformed-request")
