"""authlib wired to hashed storage: the token, revocation and introspection endpoints."""

import uuid
from datetime import timedelta

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from auth.models import TOKEN_AUTH_METHODS, AccessToken, OAuthClient
from auth.scopes import SCOPES
from core.db import db
from core.ids import new_secret, secret_digest
from core.time import now


def find_client(client_id: str) -> OAuthClient | None:
    """The live client with this id, or None (unknown, malformed or revoked)."""
    try:
        key = uuid.UUID(client_id)
    except (TypeError, ValueError, AttributeError):
        return None
    client = db.session.get(OAuthClient, key)
    if client is None or client.revoked_at is not None:
        return None
    return client


def find_token(token_string: str) -> AccessToken | None:
    """The token whose digest matches what the client presented, with its client, or None."""
    if not token_string or len(token_string) > 512:
        return None
    return db.session.scalar(
        sa.select(AccessToken).where(AccessToken.token_hash == secret_digest(token_string))
    )


def generate_access_token(**_context) -> str:
    """256 bits of randomness; the token is handed out once and only its digest is kept."""
    return new_secret(32)


def save_token(token: dict, request) -> None:
    """Store an issued token by its digest, in the request's transaction."""
    issued_at = now()
    db.session.add(
        AccessToken(
            token_hash=secret_digest(token["access_token"]),
            client_id=request.client.id,
            scope=token.get("scope", ""),
            issued_at=issued_at,
            expires_at=issued_at + timedelta(seconds=token["expires_in"]),
        )
    )
    db.session.flush()


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)


class _OwnTokenEndpoint:
    CLIENT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string)


class TokenRevocation(_OwnTokenEndpoint, RevocationEndpoint):
    """RFC 7009: a client revokes its own tokens; another client's is refused (invalid_grant)."""

    def revoke_token(self, token, request):
        if token.revoked_at is None:
            token.revoked_at = now()
            db.session.flush()


class TokenIntrospection(_OwnTokenEndpoint, IntrospectionEndpoint):
    """RFC 7662: a client introspects only its own tokens; anything else is inactive."""

    def check_permission(self, token, client, request):
        return token.check_client(client)

    def introspect_token(self, token):
        return {
            "active": True,
            "scope": token.scope,
            "client_id": token.client.client_id,
            "exp": int(token.expires_at.timestamp()),
            "iat": int(token.issued_at.timestamp()),
            "token_type": "Bearer",
        }


authorization = AuthorizationServer(query_client=find_client, save_token=save_token)


def init_app(app) -> None:
    """Bind the authorization server with this app's token lifetime and scopes."""
    app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = generate_access_token
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": app.config["TOKEN_LIFETIME"]}
    app.config["OAUTH2_SCOPES_SUPPORTED"] = list(SCOPES)
    authorization.init_app(app)
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_endpoint(TokenRevocation)
    authorization.register_endpoint(TokenIntrospection)
