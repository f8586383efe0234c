"""OAuth clients and access tokens. Secrets and tokens are stored only as SHA-256 digests."""

import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db
from core.ids import new_id, secret_digest
from core.time import now

TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class ClientPolicy:
    """authlib's ClientMixin over `id`, `scope` and `secret_hash`; shared by the stored
    client and the lean record the token endpoint reads."""

    @property
    def client_id(self) -> str:
        return str(self.id)

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        """All allowed scopes when the parameter is absent; None (invalid_scope) if one is
        not allowed, or when the parameter is present but blank (`scope=`): RFC 6749 3.3
        makes a scope one or more scope tokens, and a client that asked for none must not get
        every scope it may have."""
        if scope is None:
            return self.scope
        asked = scope.split()
        if not asked or not set(asked) <= set(self.scopes):
            return None
        return " ".join(dict.fromkeys(asked))

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(self.secret_hash, secret_digest(client_secret))

    def check_endpoint_auth_method(self, method, endpoint):
        return method in TOKEN_AUTH_METHODS

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


class OAuthClient(ClientPolicy, db.Model):
    """A partner agency's system; it always acts for exactly one organization."""

    __tablename__ = "oauth_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    #: SHA-256 hex digest of the secret; the secret itself is shown once and never stored.
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: Allowed scopes, space-separated (RFC 6749 section 3.3).
    scope: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]

    organization = relationship("Organization")


@dataclass(frozen=True)
class ClientRecord(ClientPolicy):
    """A live client as the token endpoints read it: values, no object to track."""

    id: uuid.UUID
    organization_id: uuid.UUID
    scope: str
    # Out of the repr: authlib's debug lines print the client.
    secret_hash: str = field(repr=False)


class AccessToken(db.Model):
    """A bearer token issued to a client; looked up by the digest of what the client presents
    (auth.server.find_bearer, which also gives authlib its token interface)."""

    __tablename__ = "oauth_tokens"

    #: The token's id, recorded in audit events; never the token itself.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # No index on client_id or expires_at: every lookup is by token_hash, and each index would
    # cost every token issue a write.
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("oauth_clients.id"))
    scope: Mapped[str] = mapped_column(String(1000))
    issued_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    client: Mapped[OAuthClient] = relationship()
