"""Registering and retiring the OAuth clients of partner agencies."""

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

import audit
from auth.models import OAuthClient
from auth.scopes import unknown_scopes
from core.db import db
from core.ids import new_secret, secret_digest
from core.time import now


class ClientError(ValueError):
    """An operator asked for a client the registry cannot hold."""


@dataclass
class IssuedClient:
    client: OAuthClient
    #: Shown once, at creation or rotation; only its digest is stored.
    client_secret: str


def create_client(*, organization_id: uuid.UUID, scopes: list[str], name: str) -> IssuedClient:
    """Register a client for an organization with its allowed scopes and a new secret (an
    operator's command, on the trail).

    Raises ClientError for unknown scopes or an empty scope list.
    """
    if not scopes:
        raise ClientError("a client needs at least one scope")
    unknown = unknown_scopes(scopes)
    if unknown:
        raise ClientError(f"unknown scopes: {' '.join(unknown)}")
    secret = new_secret(32)
    client = OAuthClient(
        organization_id=organization_id, name=name,
        scope=" ".join(dict.fromkeys(scopes)), secret_hash=secret_digest(secret),
    )
    db.session.add(client)
    db.session.flush()
    audit.record_operator("create", "oauth_client", client.client_id)
    return IssuedClient(client=client, client_secret=secret)


def rotate_secret(client: OAuthClient) -> IssuedClient:
    """Give a client a new secret (an operator's command, on the trail); the old one stops
    working at once."""
    secret = new_secret(32)
    client.secret_hash = secret_digest(secret)
    db.session.flush()
    audit.record_operator("update", "oauth_client", client.client_id)
    return IssuedClient(client=client, client_secret=secret)


def list_clients(*, organization_id: uuid.UUID | None = None) -> list[OAuthClient]:
    """Every client, or one organization's, oldest first."""
    stmt = sa.select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id)
    if organization_id is not None:
        stmt = stmt.where(OAuthClient.organization_id == organization_id)
    return list(db.session.scalars(stmt))


def revoke_client(client_id: uuid.UUID) -> OAuthClient | None:
    """Retire a client (an operator's command, on the trail): it can no longer get tokens,
    and its live tokens stop working. Revoking a revoked client changes nothing. None when
    there is no such client."""
    # Held, and read again as it is now: two revocations at once take turns, and the second
    # finds the first's (it rewrote revoked_at, and recorded a second revocation).
    take_client_turn(client_id)
    client = db.session.scalars(
        sa.select(OAuthClient).where(OAuthClient.id == client_id).with_for_update()
        .execution_options(populate_existing=True)).one_or_none()
    if client is not None and client.revoked_at is None:
        client.revoked_at = now()
        db.session.flush()
        audit.record_operator("revoke", "oauth_client", client.client_id)
    return client


def take_client_turn(client_id) -> None:
    """Wait until no request of the client holds its turn, and hold it alone until the
    transaction ends: a revocation of the client or of one of its tokens comes after the
    requests that already recorded what they disclose under them, and those after it see it
    (migration 0020). No-op on SQLite, whose one writer already holds the database."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(
            sa.func.oauth_client_turn(str(client_id)))))
