"""OAuth 2 as a partner agency meets it: token, revocation, introspection, metadata, bearer use.

Black-box: everything goes through HTTP, except reading the stored rows to prove that only
digests are kept, and revoking a client (an operator action, `flask client revoke`).
"""

import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus, urlsplit

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from app import create_app
from auth.models import OAuthClient
from auth.scopes import SCOPES
from auth.service import revoke_client
from core import time as clock
from core.db import db
from core.ids import secret_digest
from tests.conftest import TEST_SECRET_KEY, assert_problem, audit_events, basic, bearer

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PARTNER_SCOPES = ("directory:read", "directory:write")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOKEN_KEYS = {"access_token", "token_type", "expires_in", "scope"}
INTROSPECTION_KEYS = {"active", "scope", "client_id", "exp", "iat", "token_type"}


# -- helpers ------------------------------------------------------------------------------------


class Partner:
    """An organization with one OAuth client and its secret."""

    def __init__(self, make, name, scopes=PARTNER_SCOPES):
        self.organization = make.organization(name=name)
        self.oauth_client, self.secret = make.client(self.organization, scopes)

    @property
    def client_id(self) -> str:
        return self.oauth_client.client_id

    def credentials(self, method: str, form: dict) -> tuple[dict, dict]:
        """(form, headers) authenticating with client_secret_basic or client_secret_post."""
        if method == "basic":
            return dict(form), basic(self.client_id, self.secret)
        return {**form, "client_id": self.client_id, "client_secret": self.secret}, {}

    def post(self, client, path, method="basic", **form):
        data, headers = self.credentials(method, form)
        return client.post(path, data=data, headers=headers)

    def token_response(self, client, method="basic", **form):
        form.setdefault("grant_type", "client_credentials")
        return self.post(client, "/oauth/token", method, **form)

    def token(self, client, method="basic", **form) -> str:
        response = self.token_response(client, method, **form)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json["access_token"]


@pytest.fixture
def partner(make):
    return Partner(make, "Riverbend Infant Mental Health")


@pytest.fixture
def other(make):
    return Partner(make, "Lakeshore Pediatrics")


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def assert_oauth_error(response, status, error):
    """An RFC 6749 section 5.2 error body (not problem+json), never cached."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json["error"] == error
    assert response.headers["Cache-Control"] == "no-store"




def raw_basic(credentials: bytes) -> dict:
    """A Basic header carrying exactly these bytes (`basic` encodes text as UTF-8)."""
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


#: A valid form for each OAuth endpoint, client authentication aside.
ENDPOINT_FORMS = {
    "/oauth/token": {"grant_type": "client_credentials"},
    "/oauth/revoke": {"token": "anything"},
    "/oauth/introspect": {"token": "anything"},
}


def assert_unauthorized(response):
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def me(client, token):
    return client.get("/api/v1/me", headers=bearer(token))


# -- POST /oauth/token --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_token_issued_with_either_client_authentication(app, client, partner, method):
    response = partner.token_response(client, method)

    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"
    body = response.json
    assert body.keys() == TOKEN_KEYS
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == app.config["TOKEN_LIFETIME"]
    assert body["scope"] == " ".join(PARTNER_SCOPES)  # all the client's scopes when none asked
    assert len(body["access_token"]) >= 43  # 256 bits, URL-safe base64
    # RFC 6749 section 5.1: token responses are never cached.
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("method", ["basic", "post"])
def test_issued_token_works_on_me(client, partner, method):
    token = partner.token(client, method=method)

    response = me(client, token)

    assert response.status_code == 200, response.json
    assert response.json["client_id"] == partner.client_id
    assert response.json["organization"]["id"] == str(partner.organization.id)
    assert response.json["organization"]["name"] == "Riverbend Infant Mental Health"
    assert response.json["scopes"] == sorted(PARTNER_SCOPES)


def test_me_shows_the_organization_as_the_directory_does(client, partner):
    token = partner.token(client)

    entry = client.get(f"/api/v1/organizations/{partner.organization.id}",
                       headers=bearer(token)).json

    assert me(client, token).json == {"organization": entry, "client_id": partner.client_id,
                                      "scopes": sorted(PARTNER_SCOPES)}


def test_each_token_is_new(client, partner):
    assert partner.token(client) != partner.token(client)


@pytest.mark.parametrize(("asked", "granted"), [
    ("directory:read", "directory:read"),
    ("directory:write", "directory:write"),
    ("directory:write directory:read", "directory:write directory:read"),
    ("directory:read directory:read", "directory:read"),
])
def test_scope_narrows_the_token(client, partner, asked, granted):
    response = partner.token_response(client, scope=asked)

    assert response.status_code == 200, response.json
    assert response.json["scope"] == granted
    token = response.json["access_token"]
    assert me(client, token).json["scopes"] == sorted(granted.split())


def test_narrowed_token_lacks_the_other_scopes(client, partner):
    token = partner.token(client, scope="directory:read")

    response = client.patch(f"/api/v1/organizations/{partner.organization.id}",
                            json={"accepting_referrals": True}, headers=bearer(token))

    assert_problem(response, 403, "insufficient-scope")


def stored_tokens() -> int:
    return db.session.scalar(sa.text("SELECT count(*) FROM oauth_tokens"))


@pytest.mark.parametrize("method", ["basic", "post"])
@pytest.mark.parametrize("scope", [
    "audit:read",                       # a real scope the client was not given
    "directory:read audit:read",        # one allowed, one not
    "directory:admin",                  # not a scope at all
    "DIRECTORY:READ",                   # scopes are case-sensitive (RFC 6749 section 3.3)
    " ",                                # blank: a scope names at least one (section 3.3)
    "",                                 # present but empty: no scope asked, not every scope
])
def test_scope_the_client_lacks_is_invalid_scope(app, client, partner, method, scope):
    with app.app_context():
        before = stored_tokens()

    response = partner.token_response(client, method, scope=scope)

    assert_oauth_error(response, 400, "invalid_scope")
    assert "access_token" not in response.json
    with app.app_context():
        assert stored_tokens() == before


@pytest.mark.parametrize(("path", "form"), [
    ("/oauth/token", [("grant_type", "client_credentials"), ("grant_type", "password")]),
    ("/oauth/token", [("grant_type", "client_credentials"), ("scope", "directory:read"),
                      ("scope", "directory:write")]),
    ("/oauth/revoke", [("token", "unknown"), ("token", "{own}")]),
    ("/oauth/introspect", [("token", "{own}"), ("token", "unknown")]),
], ids=["grant_type", "scope", "revoke", "introspect"])
def test_a_parameter_sent_twice_is_invalid_request(app, client, partner, path, form):
    """RFC 6749 section 3.1. authlib would read the first: a revocation of `unknown` while
    the client's own token, sent second, stayed valid."""
    own = partner.token(client)
    with app.app_context():
        before = stored_tokens()
    response = client.post(path, data=MultiDict([(k, v.format(own=own)) for k, v in form]),
                           headers=basic(partner.client_id, partner.secret))
    assert_oauth_error(response, 400, "invalid_request")
    with app.app_context():
        assert stored_tokens() == before
    assert client.get("/api/v1/me", headers=bearer(own)).status_code == 200


@pytest.mark.parametrize("space", [" ", "\t "], ids=["space", "tab"])
def test_two_ways_of_client_authentication_at_once_is_invalid_request(client, partner, space):
    """Basic is Basic however the header spaces it (as authlib reads it)."""
    header = basic(partner.client_id, partner.secret)["Authorization"].replace(" ", space)
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": partner.client_id,
        "client_secret": "wrong"}, headers={"Authorization": header})
    assert_oauth_error(response, 400, "invalid_request")
    assert "access_token" not in response.json


def test_a_basic_header_beside_form_credentials_is_invalid_request_even_unreadable(
        client, partner):
    """Any Basic header is a way of authenticating, whether or not it can be read."""
    for authorization in ("Basic ", "Basic \xa0", "Basic not*base64"):
        response = client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": partner.client_id,
            "client_secret": partner.secret}, headers={"Authorization": authorization})
        assert_oauth_error(response, 400, "invalid_request")
        assert "access_token" not in response.json


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_form_client_id_naming_another_client_than_basic_is_invalid_request(
        client, partner, other, path):
    """RFC 6749 2.3: one way of authenticating per request. Basic for one client and a form
    `client_id` naming another got the Basic one a token, while the body said it was the other
    (as an auditor or a proxy reading the body would record it)."""
    own = partner.token(client)
    form = {**(ENDPOINT_FORMS[path] if path == "/oauth/token" else {"token": own}),
            "client_id": other.client_id}

    response = client.post(path, data=form, headers=basic(partner.client_id, partner.secret))

    assert_oauth_error(response, 400, "invalid_request")
    assert "access_token" not in response.json and "active" not in response.json
    assert me(client, own).status_code == 200


def test_a_form_client_id_beside_basic_naming_the_same_client_is_accepted(client, partner):
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": partner.client_id},
        headers=basic(partner.client_id, partner.secret))
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("order", ["basic first", "basic second"])
@pytest.mark.parametrize("second", ["wrong secret", "other client", "bearer"])
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_two_authorization_headers_are_invalid_request(client, partner, other, path, second,
                                                       order):
    """RFC 6749 2.3: one way of authenticating per request. Two Authorization lines reach the
    app joined by a comma (werkzeug and gunicorn); a lenient base64 stopped at the first
    credentials' padding and authenticated their client, whatever came after."""
    own = partner.token(client)
    headers = [("Authorization", basic(partner.client_id, partner.secret)["Authorization"]),
               ("Authorization", {
                   "wrong secret": basic(partner.client_id, "wrong")["Authorization"],
                   "other client": basic(other.client_id, other.secret)["Authorization"],
                   "bearer": f"Bearer {own}"}[second])]
    if order == "basic second":
        headers.reverse()
    form = ENDPOINT_FORMS[path] if path == "/oauth/token" else {"token": own}

    response = client.post(path, data=form, headers=headers)

    assert_oauth_error(response, 400, "invalid_request")
    assert "access_token" not in response.json and "active" not in response.json
    assert me(client, own).status_code == 200


@pytest.mark.parametrize("secret", ["a:b", "50%off", "a+b", "a b", "s\u00e9cr\u00e8t", "%41",
                                    "\u00e9:%+x"])
@pytest.mark.parametrize("encode", [quote_plus, lambda text: quote(text, safe="")],
                         ids=["form-urlencoded", "percent-encoded"])
def test_basic_credentials_are_form_urlencoded(app, client, partner, secret, encode):
    """RFC 6749 2.3.1: id and secret are form-urlencoded before Basic, so `:`, `%`, `+`, a
    space (`+`) and non-ASCII all pass; in the form body they are sent as they are."""
    with app.app_context():
        db.session.execute(sa.update(OAuthClient).where(OAuthClient.id == partner.oauth_client.id)
                           .values(secret_hash=secret_digest(secret)))
        db.session.commit()
    credentials = f"{encode(partner.client_id)}:{encode(secret)}".encode()

    in_header = client.post("/oauth/token", data=ENDPOINT_FORMS["/oauth/token"],
                            headers=raw_basic(credentials))
    in_form = client.post("/oauth/token", data={
        **ENDPOINT_FORMS["/oauth/token"], "client_id": partner.client_id,
        "client_secret": secret})

    assert in_header.status_code == 200, in_header.json
    assert in_form.status_code == 200, in_form.json


#: Basic headers no client authenticates with: base64 of bytes that are not UTF-8, nothing
#: after the scheme (or whitespace only Python counts), base64 that is not strict, and
#: percent-encoding of bytes that are not UTF-8.
MALFORMED_BASIC = {
    "binary": raw_basic(b"\xff\xfe:\xff")["Authorization"],
    "latin-1 secret": raw_basic(b"client:s\xe9cret")["Authorization"],
    "truncated utf-8": raw_basic(b"\xc3:x")["Authorization"],
    "scheme alone": "Basic",
    "space": "Basic ",
    "spaces": "basic   ",
    "nbsp": "Basic \xa0",
    "nel": "Basic \x85",
    "no padding": raw_basic(b"client:secret")["Authorization"].rstrip("="),
    "after the padding": raw_basic(b"client:secret")["Authorization"] + "Zm9v",
    "percent-encoded latin-1": raw_basic(b"client:s%E9cret")["Authorization"],
}


@pytest.mark.parametrize("malformed", MALFORMED_BASIC)
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_malformed_basic_header_is_invalid_client_401(client, path, malformed):
    """RFC 6749 5.2: failed authentication through the Authorization header is 401
    `invalid_client` with a Basic challenge, however the header fails (never a 500)."""
    response = client.post(path, data=ENDPOINT_FORMS[path],
                           headers={"Authorization": MALFORMED_BASIC[malformed]})

    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


BAD_CREDENTIALS = {
    "wrong secret": lambda p: (p.client_id, p.secret + "x"),
    "empty secret": lambda p: (p.client_id, ""),
    "secret with a trailing space": lambda p: (p.client_id, p.secret + " "),
    "unknown client id": lambda p: (str(uuid.uuid4()), p.secret),
    "malformed client id": lambda p: ("riverbend", p.secret),
    "empty client id": lambda p: ("", p.secret),
}


@pytest.mark.parametrize("case", BAD_CREDENTIALS)
def test_bad_basic_credentials_are_invalid_client_401(client, partner, case):
    client_id, secret = BAD_CREDENTIALS[case](partner)

    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=basic(client_id, secret))

    # RFC 6749 section 5.2: authenticated through the Authorization header -> 401 + challenge.
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "access_token" not in response.json


@pytest.mark.parametrize("case", BAD_CREDENTIALS)
def test_bad_post_credentials_are_invalid_client(client, partner, case):
    client_id, secret = BAD_CREDENTIALS[case](partner)

    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})

    # RFC 6749 section 5.2: 400, or 401 (which then names a scheme) for credentials in the body.
    assert response.status_code in (400, 401), response.json
    assert_oauth_error(response, response.status_code, "invalid_client")
    if response.status_code == 401:
        assert "WWW-Authenticate" in response.headers
    assert "access_token" not in response.json


@pytest.mark.parametrize("credentials", ["{id}:", "{id}", "{id}:wrong"],
                         ids=["empty secret", "no colon", "wrong secret"])
@pytest.mark.parametrize(("path", "action"), [
    ("/oauth/token", "create"), ("/oauth/revoke", "revoke"), ("/oauth/introspect", "read"),
])
def test_failed_basic_authentication_of_a_known_client_is_recorded(app, client, partner, path,
                                                                   action, credentials):
    """A Basic header naming a real client fails authentication, and is recorded against that
    client, whether its secret is wrong, empty or missing."""
    header = raw_basic(credentials.format(id=partner.client_id).encode())

    response = client.post(path, data=ENDPOINT_FORMS[path], headers=header)

    assert_oauth_error(response, 401, "invalid_client")
    with app.app_context():
        events = audit_events(client_id=partner.client_id)
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        (action, "deny", "invalid_client")]


@pytest.mark.parametrize("method", ["basic", "post"])
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_failed_client_authentication_challenges_in_the_apis_realm(client, partner, path,
                                                                     method):
    """RFC 6749 5.2: a failed client authentication is 401 `invalid_client` with a Basic
    challenge, which names its `realm` (required by RFC 7617 2): the realm of the API's
    Bearer challenge."""
    if method == "basic":
        form, headers = ENDPOINT_FORMS[path], basic(partner.client_id, "not-the-secret")
    else:
        form = {**ENDPOINT_FORMS[path], "client_id": partner.client_id,
                "client_secret": "not-the-secret"}
        headers = {}

    response = client.post(path, data=form, headers=headers)

    assert_oauth_error(response, 401, "invalid_client")
    challenge = response.headers["WWW-Authenticate"]
    api_realm = re.search(r'realm="[^"]+"', client.get("/api/v1/me").headers["WWW-Authenticate"])
    assert challenge.startswith(f'Basic {api_realm[0]}, error="invalid_client"'), challenge


#: Other spellings of a client id that uuid.UUID reads as the same UUID.
RESPELLED = {
    "upper case": str.upper,
    "no hyphens": lambda client_id: client_id.replace("-", ""),
    "braces": lambda client_id: "{" + client_id + "}",
    "urn": lambda client_id: "urn:uuid:" + client_id,
}


@pytest.mark.parametrize("spelling", RESPELLED)
@pytest.mark.parametrize("method", ["basic", "post"])
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_client_id_is_only_its_canonical_spelling(app, client, partner, path, method,
                                                    spelling):
    """Another spelling of a client's id is an unknown client, even with the right secret,
    and the failure is not recorded against the client it spells."""
    respelled = RESPELLED[spelling](partner.client_id)
    form = {"grant_type": "client_credentials"} if path == "/oauth/token" else {"token": "x"}
    if method == "basic":
        # RFC 6749 2.3.1: the id is form-encoded in the header (urn:uuid: has colons).
        headers = basic(quote(respelled, safe=""), partner.secret)
    else:
        form |= {"client_id": respelled, "client_secret": partner.secret}
        headers = {}

    response = client.post(path, data=form, headers=headers)

    assert_oauth_error(response, response.status_code, "invalid_client")
    assert response.status_code in (400, 401)
    with app.app_context():
        assert audit_events(client_id=partner.client_id) == []


def test_no_client_authentication_is_invalid_client(client):
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"})

    assert response.status_code in (400, 401)
    assert_oauth_error(response, response.status_code, "invalid_client")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token",
                                        "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                        "CLIENT_CREDENTIALS"])
@pytest.mark.parametrize("method", ["basic", "post"])
def test_other_grant_types_are_unsupported(client, partner, grant_type, method):
    response = partner.token_response(client, method, grant_type=grant_type,
                                      username="u", password="p", code="c", refresh_token="r")

    assert_oauth_error(response, 400, "unsupported_grant_type")
    assert "access_token" not in response.json




@pytest.mark.parametrize("form", [{}, {"grant_type": ""}], ids=["missing", "empty"])
def test_missing_grant_type_is_invalid_request(client, partner, form):
    data, headers = partner.credentials("basic", form)

    response = client.post("/oauth/token", data=data, headers=headers)

    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(("path", "send", "said"), [
    ("/oauth/token", {"json": {"grant_type": "client_credentials"}},
     "application/x-www-form-urlencoded"),
    ("/oauth/token", {"data": "grant_type=client_credentials", "content_type": "text/plain"},
     "application/x-www-form-urlencoded"),
    ("/oauth/token", {"data": {"scope": "directory:read"}}, "grant_type=client_credentials"),
    ("/oauth/token?grant_type=client_credentials", {}, "not the query string"),
    ("/oauth/token?scope=directory:read", {"data": {"grant_type": "client_credentials"}},
     "not the query string"),
], ids=["json", "text", "form-without-grant-type", "query-only", "query-and-form"])
def test_a_token_request_the_server_cannot_read_is_told_what_to_send(client, partner, path,
                                                                    send, said):
    """A JSON body is a common mistake; blaming a query string nobody sent misleads."""
    response = client.post(path, headers=basic(partner.client_id, partner.secret), **send)

    assert_oauth_error(response, 400, "invalid_request")
    assert said in response.json["error_description"]
    if "?" not in path:
        assert "query string" not in response.json["error_description"]


def test_token_parameters_come_from_the_body_only(client, partner):
    response = client.post("/oauth/token?scope=directory:write",
                           data={"grant_type": "client_credentials", "scope": "directory:read"},
                           headers=basic(partner.client_id, partner.secret))

    if response.status_code == 400:  # refusing the query parameters is as good
        assert response.json["error"] == "invalid_request"
    else:
        assert response.status_code == 200
        assert response.json["scope"] == "directory:read"


def test_get_on_token_endpoint_is_405(client, partner):
    response = client.get("/oauth/token", headers=basic(partner.client_id, partner.secret))

    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


# -- a revoked client -----------------------------------------------------------------------------


def retire(app, partner):
    """The operator's `flask client revoke`."""
    with app.app_context():
        revoke_client(partner.oauth_client.id)
        db.session.commit()


@pytest.mark.parametrize("method", ["basic", "post"])
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_revoked_client_cannot_use_the_oauth_endpoints(app, client, partner, path, method):
    own = partner.token(client)
    form = ENDPOINT_FORMS[path] if path == "/oauth/token" else {"token": own}
    retire(app, partner)

    response = partner.post(client, path, method, **form)

    # RFC 6749 section 5.2: 401 when authenticated through the header, 400 or 401 otherwise.
    assert response.status_code in ((401,) if method == "basic" else (400, 401))
    assert_oauth_error(response, response.status_code, "invalid_client")
    assert "access_token" not in response.json and "active" not in response.json


def test_revoked_clients_tokens_stop_working(app, client, make, partner):
    issued = partner.token(client)
    stored = make.token(oauth_client=partner.oauth_client, scopes=PARTNER_SCOPES)
    assert me(client, issued).status_code == 200
    assert me(client, stored).status_code == 200

    retire(app, partner)

    assert_unauthorized(me(client, issued))
    assert_unauthorized(me(client, stored))


def test_revoking_one_client_leaves_others_alone(app, client, partner, other):
    token = other.token(client)

    retire(app, partner)

    assert me(client, token).status_code == 200
    assert other.token_response(client).status_code == 200


# -- storage: digests only ----------------------------------------------------------------------


def rows(table: str) -> list[dict]:
    return [dict(row) for row in db.session.execute(
        sa.text(f"SELECT * FROM {table}")).mappings()]  # noqa: S608 (a fixed table name)


def test_token_is_stored_only_as_its_sha256_digest(app, client, partner):
    token = partner.token(client)

    with app.app_context():
        tokens = rows("oauth_tokens")
    assert len(tokens) == 1
    (row,) = tokens
    assert row["token_hash"] == sha256(token)
    for column, value in row.items():
        assert value is None or token not in str(value), column


def test_client_secret_is_stored_only_as_its_sha256_digest(app, partner):
    with app.app_context():
        clients = [row for row in rows("oauth_clients")
                   if str(row["id"]).replace("-", "") == partner.client_id.replace("-", "")]
    assert len(clients) == 1
    (row,) = clients
    assert row["secret_hash"] == sha256(partner.secret)
    for column, value in row.items():
        assert value is None or partner.secret not in str(value), column


def test_a_token_is_looked_up_by_its_digest_not_its_prefix(client, partner):
    token = partner.token(client)

    assert_unauthorized(me(client, token[:-1]))
    assert_unauthorized(me(client, token + "A"))
    assert_unauthorized(me(client, sha256(token)))  # the stored digest is no credential


# -- expiry -------------------------------------------------------------------------------------


def test_token_expires_after_token_lifetime(app, client, partner):
    lifetime = app.config["TOKEN_LIFETIME"]
    clock.freeze(T0)
    token = partner.token(client)

    clock.freeze(T0 + timedelta(seconds=lifetime - 1))
    assert me(client, token).status_code == 200

    clock.freeze(T0 + timedelta(seconds=lifetime))
    response = me(client, token)
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    clock.freeze(T0 + timedelta(days=30))
    assert_unauthorized(me(client, token))


def test_token_lifetime_belongs_to_the_app(app, client, partner):
    other_app = create_app({
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": TEST_SECRET_KEY, "LOG_LEVEL": "WARNING", "TOKEN_LIFETIME": 120,
    })
    try:
        response = partner.token_response(client)
        assert response.json["expires_in"] == app.config["TOKEN_LIFETIME"]
    finally:
        with other_app.app_context():
            db.engine.dispose()


# -- POST /oauth/revoke (RFC 7009) --------------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_revoke_own_token(client, partner, method):
    token = partner.token(client)
    assert me(client, token).status_code == 200

    response = partner.post(client, "/oauth/revoke", method, token=token,
                            token_type_hint="access_token")

    assert response.status_code == 200, response.json
    assert response.json == {}
    assert_unauthorized(me(client, token))
    # Revoking it again changes nothing and is still 200.
    assert partner.post(client, "/oauth/revoke", method, token=token).status_code == 200


def test_revoke_leaves_other_tokens_of_the_client_alone(client, partner):
    revoked, kept = partner.token(client), partner.token(client)

    assert partner.post(client, "/oauth/revoke", token=revoked).status_code == 200

    assert_unauthorized(me(client, revoked))
    assert me(client, kept).status_code == 200


@pytest.mark.parametrize("token", ["never-issued", "x" * 600, sha256("never-issued")])
def test_revoke_unknown_token_is_200(client, partner, token):
    response = partner.post(client, "/oauth/revoke", token=token)

    assert response.status_code == 200, response.json


def test_revoke_another_clients_token_is_refused(client, partner, other):
    theirs = other.token(client)

    response = partner.post(client, "/oauth/revoke", token=theirs)

    assert_oauth_error(response, 400, "invalid_grant")
    assert me(client, theirs).status_code == 200


def test_revoke_needs_client_authentication(client, partner):
    token = partner.token(client)

    response = client.post("/oauth/revoke", data={"token": token},
                           headers=basic(partner.client_id, "wrong"))

    assert_oauth_error(response, 401, "invalid_client")
    assert me(client, token).status_code == 200


def test_revoke_without_token_is_invalid_request(client, partner):
    assert_oauth_error(partner.post(client, "/oauth/revoke"), 400, "invalid_request")


def test_revoke_with_a_wrong_type_hint_still_revokes(client, partner):
    token = partner.token(client)

    response = partner.post(client, "/oauth/revoke", token=token, token_type_hint="refresh_token")

    assert response.status_code == 200, response.json
    assert_unauthorized(me(client, token))


# -- POST /oauth/introspect (RFC 7662) ----------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_introspect_own_live_token(app, client, partner, method):
    clock.freeze(T0)
    token = partner.token(client, scope="directory:read")

    response = partner.post(client, "/oauth/introspect", method, token=token)

    assert response.status_code == 200, response.json
    assert response.json == {
        "active": True,
        "scope": "directory:read",
        "client_id": partner.client_id,
        "exp": int(T0.timestamp()) + app.config["TOKEN_LIFETIME"],
        "iat": int(T0.timestamp()),
        "token_type": "Bearer",
    }
    assert response.json.keys() == INTROSPECTION_KEYS


def inactive_expired(app, client, make, partner, other):
    clock.freeze(T0)
    token = partner.token(client)
    clock.freeze(T0 + timedelta(seconds=app.config["TOKEN_LIFETIME"]))
    return token


def inactive_revoked(app, client, make, partner, other):
    token = partner.token(client)
    assert partner.post(client, "/oauth/revoke", token=token).status_code == 200
    return token


def inactive_stored_revoked(app, client, make, partner, other):
    return make.token(oauth_client=partner.oauth_client, scopes=PARTNER_SCOPES, revoked=True)


def inactive_unknown(app, client, make, partner, other):
    return "never-issued-" + "x" * 30


def inactive_other_clients(app, client, make, partner, other):
    return other.token(client)


def inactive_same_organization_other_client(app, client, make, partner, other):
    sibling, _ = make.client(partner.organization, PARTNER_SCOPES)
    return make.token(oauth_client=sibling, scopes=PARTNER_SCOPES)


@pytest.mark.parametrize("situation", [
    inactive_expired, inactive_revoked, inactive_stored_revoked, inactive_unknown,
    inactive_other_clients, inactive_same_organization_other_client,
], ids=lambda f: f.__name__.removeprefix("inactive_"))
def test_introspect_anything_else_is_just_inactive(app, client, make, partner, other, situation):
    token = situation(app, client, make, partner, other)

    response = partner.post(client, "/oauth/introspect", token=token)

    assert response.status_code == 200, response.json
    assert response.json == {"active": False}


def test_introspecting_another_clients_token_keeps_it_alive(client, partner, other):
    theirs = other.token(client)

    partner.post(client, "/oauth/introspect", token=theirs)

    assert me(client, theirs).status_code == 200
    assert other.post(client, "/oauth/introspect", token=theirs).json["active"] is True


def test_introspect_needs_client_authentication(client, partner):
    token = partner.token(client)

    response = client.post("/oauth/introspect", data={"token": token})

    assert response.status_code in (400, 401)
    assert_oauth_error(response, response.status_code, "invalid_client")
    assert "active" not in response.json


# -- GET /.well-known/oauth-authorization-server (RFC 8414) -------------------------------------


def assert_metadata(metadata, issuer):
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/oauth/token"
    assert metadata["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert metadata["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    issuer_parts = urlsplit(issuer)
    for key in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        parts = urlsplit(metadata[key])
        assert (parts.scheme, parts.netloc) == (issuer_parts.scheme, issuer_parts.netloc), key
    assert sorted(metadata["scopes_supported"]) == sorted(SCOPES)
    assert len(metadata["scopes_supported"]) == len(SCOPES)
    assert metadata["grant_types_supported"] == ["client_credentials"]
    methods = {"client_secret_basic", "client_secret_post"}
    assert set(metadata["token_endpoint_auth_methods_supported"]) == methods
    assert len(metadata["token_endpoint_auth_methods_supported"]) == 2
    assert set(metadata["revocation_endpoint_auth_methods_supported"]) == methods
    assert set(metadata["introspection_endpoint_auth_methods_supported"]) == methods
    assert isinstance(metadata["response_types_supported"], list)  # REQUIRED by RFC 8414


@pytest.mark.parametrize("base_url", ["http://localhost", "https://imh.example.org",
                                      "https://imh.example.org:8443",
                                      "https://xn--bcher-kva.example"])
def test_metadata_issuer_from_request_host(app, client, base_url):
    assert app.config["OAUTH_ISSUER"] is None

    response = client.get("/.well-known/oauth-authorization-server", base_url=base_url)

    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"
    assert_metadata(response.json, base_url)


def test_metadata_needs_no_token(client):
    response = client.get("/.well-known/oauth-authorization-server")

    assert response.status_code == 200


def test_metadata_endpoints_are_the_real_ones(client, partner):
    metadata = client.get("/.well-known/oauth-authorization-server").json

    token_path = urlsplit(metadata["token_endpoint"]).path
    response = client.post(token_path, data={"grant_type": "client_credentials"},
                           headers=basic(partner.client_id, partner.secret))
    assert response.status_code == 200
    token = response.json["access_token"]
    introspect = client.post(urlsplit(metadata["introspection_endpoint"]).path,
                             data={"token": token},
                             headers=basic(partner.client_id, partner.secret))
    assert introspect.json["active"] is True
    revoke = client.post(urlsplit(metadata["revocation_endpoint"]).path, data={"token": token},
                         headers=basic(partner.client_id, partner.secret))
    assert revoke.status_code == 200


def test_metadata_uses_configured_issuer(app, client):
    saved = app.config["OAUTH_ISSUER"]
    app.config["OAUTH_ISSUER"] = "https://auth.imh.example.net"
    try:
        response = client.get("/.well-known/oauth-authorization-server",
                              base_url="http://internal-host:8000")
    finally:
        app.config["OAUTH_ISSUER"] = saved

    assert response.status_code == 200
    assert_metadata(response.json, "https://auth.imh.example.net")


# -- presenting a bearer token ------------------------------------------------------------------


def test_token_in_query_string_is_ignored(client, partner):
    token = partner.token(client)

    response = client.get("/api/v1/me", query_string={"access_token": token})

    assert_unauthorized(response)


def test_token_in_query_string_does_not_replace_a_bad_header(client, partner):
    token = partner.token(client)

    response = client.get("/api/v1/me", query_string={"access_token": token},
                          headers=bearer("not-a-token"))

    assert_unauthorized(response)


@pytest.mark.parametrize("body", ["form", "json"])
def test_token_in_the_body_is_ignored(client, partner, body):
    token = partner.token(client)
    sent = {"data": {"access_token": token}} if body == "form" else \
        {"json": {"access_token": token}}

    response = client.post("/api/v1/consent-decisions", **sent)

    assert_unauthorized(response)


def test_basic_authorization_on_the_api_is_401(client, partner):
    response = client.get("/api/v1/me", headers=basic(partner.client_id, partner.secret))

    assert_unauthorized(response)


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Bearer not-a-token", "Token abc", "Bearer " + "x" * 5000,
])
def test_missing_or_malformed_bearer_is_401(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get("/api/v1/me", headers=headers)

    assert_unauthorized(response)


#: The challenge to a request without bearer authentication, and to a bad bearer token.
PLAIN = 'Bearer realm="imh-referral-network"'
INVALID_TOKEN = 'Bearer realm="imh-referral-network", error="invalid_token"'


@pytest.mark.parametrize(("authorization", "challenge"), [
    (None, PLAIN), ("", PLAIN), ("Basic {basic}", PLAIN), ("Token abc", PLAIN),
    ("Digest x", PLAIN),
    ("Bearer", INVALID_TOKEN), ("Bearer not-a-token", INVALID_TOKEN), ("bearer x", INVALID_TOKEN),
    ("Bearer x y", INVALID_TOKEN),
])
def test_the_challenge_names_an_error_only_when_a_bearer_token_was_sent(client, partner,
                                                                         authorization,
                                                                         challenge):
    """RFC 6750 3.1: to a request that lacks bearer authentication (no header, or another
    scheme) the challenge carries no error code: no token was bad."""
    credentials = basic(partner.client_id, partner.secret)["Authorization"].split()[1]
    headers = {} if authorization is None else {
        "Authorization": authorization.format(basic=credentials)}

    response = client.get("/api/v1/me", headers=headers)

    assert_unauthorized(response)
    assert response.headers["WWW-Authenticate"] == challenge


def test_bearer_scheme_is_case_insensitive_and_may_be_followed_by_spaces(client, partner):
    """RFC 6750 2.1 `Bearer 1*SP b64token`; the scheme is case-insensitive (RFC 9110 11.1)."""
    token = partner.token(client)

    for authorization in (f"Bearer  {token}", f"bearer {token}", f"BEARER {token}"):
        assert client.get("/api/v1/me",
                          headers={"Authorization": authorization}).status_code == 200


@pytest.mark.parametrize("headers", [
    [("Authorization", "Bearer {own}"), ("Authorization", "Bearer x")],
    [("Authorization", "Bearer x"), ("Authorization", "Bearer {own}")],
    [("Authorization", "Bearer {own}, Bearer x")],
], ids=["valid first", "valid second", "one line"])
def test_two_bearer_credentials_are_401(client, partner, headers):
    """Which of two tokens would be the caller's is a guess: neither is taken."""
    own = partner.token(client)

    response = client.get("/api/v1/me", headers=[(name, value.format(own=own))
                                                 for name, value in headers])

    assert_unauthorized(response)


def test_stored_revoked_token_is_401(client, make, partner):
    token = make.token(oauth_client=partner.oauth_client, scopes=PARTNER_SCOPES, revoked=True)

    assert_unauthorized(me(client, token))


def test_token_without_the_routes_scope_is_403(client, make, partner):
    token = make.token(partner.organization, ["families:read"])

    response = client.get("/api/v1/organizations", headers=bearer(token))

    assert_problem(response, 403, "insufficient-scope")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert "directory:read" in response.headers["WWW-Authenticate"]


# -- X-Request-ID -------------------------------------------------------------------------------


def every_kind_of_response(client, partner):
    token = partner.token(client)
    return {
        "token issued": partner.token_response(client),
        "token refused": client.post("/oauth/token", data={"grant_type": "client_credentials"}),
        "revoke": partner.post(client, "/oauth/revoke", token="unknown"),
        "introspect": partner.post(client, "/oauth/introspect", token="unknown"),
        "metadata": client.get("/.well-known/oauth-authorization-server"),
        "me": me(client, token),
        "me 401": me(client, "nope"),
        "404": client.get("/no/such/path"),
        "405": client.delete("/api/v1/me", headers=bearer(token)),
    }


def test_every_response_carries_a_request_id(client, partner):
    seen = set()
    for name, response in every_kind_of_response(client, partner).items():
        request_id = response.headers.get("X-Request-ID")
        assert request_id and UUID_RE.match(request_id), name
        seen.add(request_id)
    assert len(seen) == 9  # one new id per request


@pytest.mark.parametrize("request_id", [
    "abc-123", "req_2026.03.02:0001", "A" * 128, str(uuid.UUID(int=7)),
])
@pytest.mark.parametrize("path", ["/api/v1/me", "/nope"])
def test_valid_request_id_is_echoed(client, partner, request_id, path):
    token = partner.token(client)

    response = client.get(path, headers={**bearer(token), "X-Request-ID": request_id})

    assert response.headers["X-Request-ID"] == request_id
    if response.mimetype == "application/problem+json":
        assert response.json["request_id"] == request_id


@pytest.mark.parametrize(("method", "path"), [
    ("OPTIONS", "/api/v1/me"), ("HEAD", "/api/v1/me"), ("OPTIONS", "/oauth/token"),
    ("GET", "/oauth/token"), ("HEAD", "/.well-known/oauth-authorization-server"),
    ("POST", "/oauth/introspect"),
])
def test_request_id_is_echoed_whatever_the_method(client, partner, method, path):
    """Answers Flask makes itself (OPTIONS, HEAD, 405) and refusals carry it too."""
    response = client.open(path, method=method, headers={**bearer(partner.token(client)),
                                                         "X-Request-ID": "trace-42"})

    assert response.headers["X-Request-ID"] == "trace-42"


def test_request_id_is_echoed_on_oauth_endpoints(client, partner):
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={**basic(partner.client_id, partner.secret),
                                    "X-Request-ID": "token-call-1"})

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "token-call-1"


@pytest.mark.parametrize("request_id", [
    "a" * 300, "a" * 129, "has space", "semi;colon", "<script>", "caf\u00e9", "",
], ids=["300-chars", "129-chars", "space", "semicolon", "markup", "non-ascii", "empty"])
@pytest.mark.parametrize("path", ["/api/v1/me", "/nope"])
def test_invalid_request_id_is_replaced(client, partner, request_id, path):
    token = partner.token(client)

    response = client.get(path, headers={**bearer(token),
                                         "X-Request-ID": request_id.encode().decode("latin-1")})

    assert response.headers["X-Request-ID"] != request_id
    assert UUID_RE.match(response.headers["X-Request-ID"])
    if response.mimetype == "application/problem+json":
        assert response.json["request_id"] == response.headers["X-Request-ID"]
