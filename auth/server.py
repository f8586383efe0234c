"""authlib wired to hashed storage: the token, revocation and introspection endpoints."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from authlib.common.security import is_secure_transport
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnsupportedTokenTypeError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import current_app, g
from flask import request as flask_request

import audit
from auth.limits import basic_credentials, count_authenticated_client, presented_client_id
from auth.models import TOKEN_AUTH_METHODS, AccessToken, ClientPolicy, ClientRecord, OAuthClient
from auth.scopes import SCOPES
from auth.service import take_client_turn
from core.db import db
from core.errors import REALM
from core.ids import canonical_uuid, new_id, new_secret, secret_digest
from core.time import now
from core.web import content_coding, host_for_urls
from organizations.models import ENTRY_COLUMNS, Organization, directory_entry

log = logging.getLogger(__name__)
#: The audit action of each OAuth endpoint.
_ENDPOINT_ACTIONS = {"token": "create", "revocation": "revoke", "introspection": "read"}


_tokens, _clients, _organizations = (AccessToken.__table__, OAuthClient.__table__,
                                     Organization.__table__)
# Every token request runs this (Core: values, not objects to track).
_LIVE_CLIENT = (sa.select(_clients.c.id, _clients.c.organization_id, _clients.c.scope,
                          _clients.c.secret_hash)
                .where(_clients.c.id == sa.bindparam("id", type_=sa.Uuid()),
                       _clients.c.revoked_at.is_(None)))


_INSERT_TOKEN = _tokens.insert()


def find_client(client_id: str) -> ClientRecord | None:
    """The live client with this id, or None (unknown, malformed or revoked). An id is only
    its canonical spelling: another spelling of the same UUID is an unknown client."""
    key = canonical_uuid(client_id)
    if key is None:
        return None
    row = db.session.connection().execute(_LIVE_CLIENT, {"id": key}).first()
    return None if row is None else ClientRecord(*row)


@dataclass(frozen=True)
class BearerToken:
    """What a presented bearer token stands for; authlib's TokenMixin interface."""

    id: uuid.UUID
    client_id: uuid.UUID
    scope: str
    issued_at: datetime
    expires_at: datetime
    revoked: bool
    #: The client's organization as a directory entry (a dict).
    organization: dict

    def check_client(self, client):
        return self.client_id == client.id

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return self.expires_at <= now()

    def is_revoked(self):
        return self.revoked


# Built once, in Core on the session's connection: every API request runs it, and it
# returns values, not objects to track.
_BEARER = (
    # Primary keys, not foreign keys: a foreign key's type is unknown when this is built.
    sa.select(_tokens.c.id.label("token_id"), _clients.c.id.label("client_id"), _tokens.c.scope,
              _tokens.c.issued_at, _tokens.c.expires_at, _tokens.c.revoked_at,
              _clients.c.revoked_at.label("client_revoked_at"),
              *(_organizations.c[name] for name in ENTRY_COLUMNS),
              _organizations.c.capacity_status, _organizations.c.capacity_waitlist,
              _organizations.c.capacity_updated_at)
    .join(_clients, _tokens.c.client_id == _clients.c.id)
    .join(_organizations, _clients.c.organization_id == _organizations.c.id)
    .where(_tokens.c.token_hash == sa.bindparam("digest"))
)


def find_bearer(token_string: str) -> BearerToken | None:
    """The token a bearer presents, with its client's state and organization, in one indexed
    query; or None."""
    if not token_string or len(token_string) > 512:
        return None
    row = db.session.connection().execute(
        _BEARER, {"digest": secret_digest(token_string)}).mappings().first()
    if row is None:
        return None
    return BearerToken(
        id=row["token_id"], client_id=row["client_id"], scope=row["scope"],
        issued_at=row["issued_at"], expires_at=row["expires_at"],
        revoked=row["revoked_at"] is not None or row["client_revoked_at"] is not None,
        organization=directory_entry(row))


def generate_access_token(**_context) -> str:
    """256 bits of randomness; the token is handed out once and only its digest is kept."""
    return new_secret(32)


def _as_actor(client: ClientPolicy) -> dict:
    return {"organization_id": client.organization_id, "client_id": client.client_id}


def save_token(token: dict, request) -> None:
    """Store an issued token by its digest, in the request's transaction, and record it."""
    issued_at = now()
    token_id = new_id()
    # One Core insert, built once: nothing in this request reads the token back as an object.
    db.session.connection().execute(_INSERT_TOKEN, {
        "id": token_id,
        "token_hash": secret_digest(token["access_token"]),
        "client_id": request.client.id,
        "scope": token.get("scope", ""),
        "issued_at": issued_at,
        "expires_at": issued_at + timedelta(seconds=token["expires_in"]),
        "revoked_at": None,
    })
    audit.record(action="create", outcome="permit", reason="client_credentials",
                 resource_type="access_token", resource_id=token_id, token_id=token_id,
                 **_as_actor(request.client))


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)

    def validate_requested_scope(self):
        """Refuse unknown scopes and scopes the client may not have, and record the refusal."""
        try:
            super().validate_requested_scope()
            if self.client.get_allowed_scope(self.request.payload.scope) is None:
                raise InvalidScopeError()
        except InvalidScopeError:
            g.audit_denial = {"action": "create", "reason": "invalid_scope",
                              "resource_type": "access_token", **_as_actor(self.client)}
            raise


class _OwnTokenEndpoint:
    CLIENT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)
    # Only access tokens exist here; a refresh_token hint only widens the search (RFC 7009 2.1).
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string, token_type_hint):
        return find_bearer(token_string)

    def check_params(self, request, client):
        try:
            super().check_params(request, client)
        except UnsupportedTokenTypeError as error:
            # A bad parameter of an authenticated client: 400 (RFC 7009 2.2.1, RFC 6749 5.2),
            # not authlib's 401, which would say the client's credentials failed.
            error.status_code = 400
            raise


class TokenRevocation(_OwnTokenEndpoint, RevocationEndpoint):
    """RFC 7009: a client revokes its own tokens; another client's is refused (invalid_grant)."""

    def authenticate_token(self, request, client):
        try:
            token = super().authenticate_token(request, client)
        except InvalidGrantError:
            other = find_bearer(request.form["token"])
            g.audit_denial = {"action": "revoke", "reason": "not_own_token",
                              "resource_type": "access_token", "resource_id": other.id,
                              **_as_actor(client)}
            raise
        if token is None:
            audit.record(action="revoke", outcome="permit", reason="unknown_token",
                         resource_type="access_token", **_as_actor(client))
        return token

    def revoke_token(self, token, request):
        take_client_turn(token.client_id)
        revoked = db.session.execute(sa.update(AccessToken).where(
            AccessToken.id == token.id, AccessToken.revoked_at.is_(None)).values(revoked_at=now()))
        # Revoked already (by an earlier call, or one that just took the turn before this):
        # answered 200 as RFC 7009 asks, and recorded as what it was.
        reason = "own_token" if revoked.rowcount else "already_revoked"
        audit.record(action="revoke", outcome="permit", reason=reason,
                     resource_type="access_token", resource_id=token.id, token_id=token.id,
                     **_as_actor(request.client))


class TokenIntrospection(_OwnTokenEndpoint, IntrospectionEndpoint):
    """RFC 7662: a client introspects only its own tokens; anything else is inactive."""

    def check_permission(self, token, client, request):
        return token.check_client(client)

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        permitted = token is not None and self.check_permission(token, client, request)
        if token is None:
            outcome, reason = "permit", "unknown_token"
        elif not permitted:
            outcome, reason = "deny", "not_own_token"
        else:
            outcome = "permit"
            reason = "inactive" if token.is_expired() or token.is_revoked() else "active"
        audit.record(action="read", outcome=outcome, reason=reason,
                     resource_type="access_token", resource_id=token.id if token else None,
                     **_as_actor(client))
        return token if permitted else None

    def introspect_token(self, token):
        return {
            "active": True,
            "scope": token.scope,
            "client_id": str(token.client_id),
            "exp": int(token.expires_at.timestamp()),
            "iat": int(token.issued_at.timestamp()),
            "token_type": "Bearer",
        }


class ClientAuthenticationFailed(InvalidClientError):
    """401 `invalid_client` whose Basic challenge names the realm, as the Bearer challenge
    does: RFC 7617 2 makes `realm` required, and authlib's challenge leaves it out."""

    def get_headers(self):
        return [(name, f'Basic realm="{REALM}", ' + value.removeprefix("Basic "))
                if name == "WWW-Authenticate" else (name, value)
                for name, value in super().get_headers()]


class AuditedAuthorizationServer(AuthorizationServer):
    """Records failed client authentication with the client id it claimed, and reads token
    requests from the form body only (RFC 6749 3.2)."""

    def create_token_response(self, request=None):
        return self._refuse_before_reading(request, token=True) or \
            super().create_token_response(request)

    def create_endpoint_response(self, name, request=None):
        return self._refuse_before_reading(request, token=False) or \
            super().create_endpoint_response(name, request)

    def _refuse_before_reading(self, request, *, token: bool):
        """The answer to a request authlib must not read (see `_unreadable_form`), or None."""
        if refused := self._refuse_plain_http():
            return refused
        if error := _unreadable_form(token=token):
            return self.handle_error_response(self.create_oauth2_request(request), error)
        return None

    def _refuse_plain_http(self):
        """400 `invalid_request` for a request over plain http to a host other than loopback:
        OAuth 2 needs TLS for client secrets and tokens (RFC 6749 2.3.1, 10.3). authlib raises
        for it as it reads the request, which was a 500 on every OAuth endpoint; behind a
        proxy that ends TLS, TRUSTED_PROXIES lets its X-Forwarded-Proto say https."""
        if host_for_urls() is None:
            # authlib builds the request's URL from the host, and raises without one.
            return self.handle_response(*InvalidRequestError(
                "The Host header is not a host name (behind a proxy, forward the client's)")())
        if is_secure_transport(flask_request.url):
            return None
        return self.handle_response(*InvalidRequestError(
            "Send OAuth requests over https: OAuth 2 requires TLS")())

    def authenticate_client(self, request, methods, endpoint="token"):
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            _record_failed_authentication(request, endpoint)
            # One answer for an unknown client and a wrong secret: neither tells which it was.
            raise ClientAuthenticationFailed(description="Client authentication failed",
                                             status_code=401) from None
        # Counted only now: before it, the request counts against the claimed id's failures.
        count_authenticated_client(client.client_id)
        return client


_FORM = "application/x-www-form-urlencoded"
_FORM_ONLY = "Send the request as an application/x-www-form-urlencoded form body"
_UNCODED = "Send the form as it is: no Content-Encoding is decoded here"


def _unreadable_form(*, token: bool) -> InvalidRequestError | None:
    """Why an OAuth request (`token`: a token request, else introspection or revocation) is
    refused before authlib reads it, saying what to send; None when it may be read. The
    parameters come in a form body alone (RFC 6749 3.2, RFC 7009 2.1, RFC 7662 2.1): not a
    query string, not JSON, not multipart (which werkzeug would read as a form too), not
    content-coded, each parameter once."""
    if token and flask_request.args:
        return InvalidRequestError(
            "Send grant_type and the other parameters in the form body, not the query string")
    # Introspection and revocation without a body type: no form, authlib says what is missing.
    if flask_request.mimetype not in ((_FORM,) if token else ("", _FORM)):
        return InvalidRequestError(_FORM_ONLY)
    if content_coding():
        return InvalidRequestError(_UNCODED)
    if token and not flask_request.form.get("grant_type"):
        return InvalidRequestError("Send grant_type=client_credentials in the form body")
    return _repeated_parameter()


_OAUTH_PARAMETERS = frozenset({"grant_type", "scope", "client_id", "client_secret", "token",
                               "token_type_hint"})


def _repeated_parameter() -> InvalidRequestError | None:
    """RFC 6749 3.1: no parameter more than once. authlib would take the first of several, so
    `token=unknown&token=<own>` revoked nothing and a second `scope` went unread. And 2.3: one
    way of authenticating the client per request (authlib would let Basic win over a wrong
    `client_secret`, or another client's `client_id`, in the form), with one credential in one
    Authorization header."""
    repeated = sorted(name for name in flask_request.form
                      if len(flask_request.form.getlist(name)) > 1)
    if repeated:
        # Named only when it is one of ours: error_description allows printable ASCII alone.
        named = [name for name in repeated if name in _OAUTH_PARAMETERS]
        return InvalidRequestError("Send each parameter once" + (
            f": {', '.join(named)}" if named == repeated else ""))
    # Two Authorization lines arrive joined by a comma, which neither Basic nor Bearer
    # credentials hold: which of them would authenticate the client is anyone's guess.
    if "," in flask_request.headers.get("Authorization", ""):
        return InvalidRequestError("Send one Authorization header, with one credential")
    # Basic as the server reads it (auth.limits.basic_credentials), well formed or not.
    basic = basic_credentials(flask_request.headers)
    if basic is None:
        return None
    if "client_secret" in flask_request.form:
        return InvalidRequestError("Authenticate the client one way: HTTP Basic, or "
                                   "client_id and client_secret in the form, not both")
    # A form client_id naming another client than Basic: authlib would serve the Basic one
    # while the body says it is the other, for whoever reads the body (a proxy, a log).
    if flask_request.form.get("client_id", basic.client_id) != basic.client_id:
        return InvalidRequestError("The form's client_id is not the client of the HTTP Basic "
                                   "credentials: send the id once, in Basic")
    return None


def authenticate_client_secret_basic(query_client, request):
    """authlib's `client_secret_basic` with the strict reading of the header the rate limit
    keys by: a header that reading refuses authenticates no client (401 `invalid_client`, not
    a 500, and no lenient decoding that stops at the first padding)."""
    credentials = basic_credentials(request.headers)
    if credentials is None or credentials.malformed or not credentials.secret:
        return None
    client = query_client(credentials.client_id)
    if client is not None and client.check_client_secret(credentials.secret):
        return client
    return None


def _record_failed_authentication(request, endpoint: str) -> None:
    claimed = presented_client_id()
    client = _any_client(claimed)
    if client is None:
        # An id no client has: a stranger; the application log has it, the chain does not.
        # The claimed id only when it is one: a secret sent as the id must not be logged.
        log.info("failed client authentication at the %s endpoint: %s (request %s, "
                 "address %s)", endpoint, _claimed_for_log(claimed), g.get("request_id"),
                 flask_request.remote_addr)
        return
    g.audit_denial = {"action": _ENDPOINT_ACTIONS[endpoint], "reason": "invalid_client",
                      "resource_type": "access_token", **_as_actor(client)}


def _claimed_for_log(client_id: str | None) -> str:
    if client_id is None:
        return "no client id"
    key = canonical_uuid(client_id)
    return "a malformed client id" if key is None else f"unknown client {key}"


def _any_client(client_id) -> OAuthClient | None:
    key = canonical_uuid(client_id)
    return None if key is None else db.session.get(OAuthClient, key)


def authorization_server() -> AuditedAuthorizationServer:
    """The current app's authorization server."""
    return current_app.extensions["authorization_server"]


def init_app(app) -> None:
    """Give the app its own authorization server, with its token lifetime and scopes."""
    app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = generate_access_token
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": app.config["TOKEN_LIFETIME"]}
    app.config["OAUTH2_SCOPES_SUPPORTED"] = list(SCOPES)
    server = AuditedAuthorizationServer(app, query_client=find_client, save_token=save_token)
    server.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(TokenRevocation)
    server.register_endpoint(TokenIntrospection)
    app.extensions["authorization_server"] = server
