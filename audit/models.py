"""Audit events (append only, hash-chained), the chain head, and signed checkpoints."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BIGINT_MAX, db, one_of
from core.sqltypes import JSONDocument

#: The last position the chain can hold.
MAX_SEQ = BIGINT_MAX

ACTIONS = ("create", "read", "update", "search", "transition", "revoke", "decide", "export")
OUTCOMES = ("permit", "deny", "error")
#: Every kind of object an event is about (`resource.type`), and what it is.
RESOURCE_TYPES = {
    "access_token": "An OAuth token: its issue, revocation, introspection, or a failed "
                    "client authentication.",
    "api": "A request about no one object (an unknown path, a replay of no known kind).",
    "audit_event": "The trail itself: an auditor's search, read or export.",
    "consent": "A family consent: its record, a look at it, its revocation, or the engine's "
               "answer to a consent decision.",
    "disclosures": "A family's accounting of disclosures, read.",
    "family": "A family record.",
    "oauth_client": "An OAuth client, issued or revoked by an operator.",
    "organization": "A directory listing.",
    "referral": "A referral.",
    "referral_events": "A referral's timeline, read.",
    "referral_note": "A note on a referral.",
    "referral_notes": "A referral's notes, read.",
}
#: The `prev_hash` of the first event.
GENESIS_HASH = "0" * 64


class _EventFields:
    """What an event says; chained events add seq, prev_hash and hash."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    recorded_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(8))
    #: Why: `consent`, `custodian`, `not_found`, `insufficient_scope`, `invalid_client`, ...
    reason: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[uuid.UUID | None]
    #: The client that acted, or the one a failed authentication claimed to be.
    client_id: Mapped[str | None] = mapped_column(String(64))
    token_id: Mapped[uuid.UUID | None]
    purpose: Mapped[str | None] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    family_id: Mapped[uuid.UUID | None]
    #: Every family whose information the event disclosed, when it names several (a page of
    #: a list): lowercase UUID strings, de-duplicated and sorted.
    family_ids: Mapped[list[str]] = mapped_column(JSONDocument, server_default="[]")
    #: Information categories disclosed (permit) or asked for (deny).
    categories: Mapped[list[str]] = mapped_column(JSONDocument)
    #: Consents the decision relied on.
    consent_ids: Mapped[list[str]] = mapped_column(JSONDocument)
    request_id: Mapped[str | None] = mapped_column(String(128))
    request_method: Mapped[str | None] = mapped_column(String(8))
    #: The path without its query string.
    request_path: Mapped[str | None] = mapped_column(String(512))
    request_ip: Mapped[str | None] = mapped_column(String(64))


class AuditEvent(_EventFields, db.Model):
    """One access or change, allowed or denied. Never updated or deleted (triggers refuse it)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        one_of("action", ACTIONS),
        one_of("outcome", OUTCOMES),
        # Auditors' filters, each ending in seq so a page is an index range scan at any depth.
        sa.Index("ix_audit_events_organization_seq", "organization_id", "seq"),
        sa.Index("ix_audit_events_client_seq", "client_id", "seq"),
        sa.Index("ix_audit_events_family_seq", "family_id", "seq"),
        sa.Index("ix_audit_events_resource_seq", "resource_type", "resource_id", "seq"),
        sa.Index("ix_audit_events_action_seq", "action", "seq"),
        sa.Index("ix_audit_events_outcome_seq", "outcome", "seq"),
        sa.Index("ix_audit_events_recorded_at", "recorded_at"),
    )

    #: Position in the chain: 1, 2, 3, ... with no gaps.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditPending(_EventFields, db.Model):
    """An event committed by a request, waiting for the sealer to chain it (PostgreSQL).

    `audit_seal_pending` (migration 0008) moves committed rows into `audit_events` in
    batches, oldest first, under the chain head's lock; none can be changed, and one can be
    deleted only once its event is in the chain. It carries the chain's checks, so a row the
    chain would refuse fails its request's commit instead of stopping the sealer. (SQLite
    chains in Python at commit instead, its writers being serialized already.)
    """

    __tablename__ = "audit_pending"
    __table_args__ = (
        one_of("action", ACTIONS),
        one_of("outcome", OUTCOMES),
        sa.Index("ix_audit_pending_recorded_at_id", "recorded_at", "id"),  # the sealing order
    )


class AuditListedFamily(db.Model):
    """One family an event's `family_ids` names: the index the family filters read.

    Filled by a trigger on `audit_events` (migration 0006) and append-only like the events.
    Why a table and not a GIN index on the jsonb column: a page of a family's events must be
    an index range scan ending in seq at any depth, like every other auditor's filter, and
    GIN yields no order (every match is fetched and sorted, page after page), nor exists on
    SQLite. Events name their one family in `family_id` (hashed, indexed): only `family_ids`
    lands here, so the common single-family event costs no extra row.
    """

    __tablename__ = "audit_listed_families"

    family_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class AuditChainHead(db.Model):
    """The one row naming the newest event; locked by every writer, so the chain stays linear."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    #: When the newest checkpoint was made, for the scheduled checkpoints.
    checkpointed_at: Mapped[datetime | None]
    #: The newest `recorded_at` chained so far.
    newest_recorded_at: Mapped[datetime | None]
    #: The most, in microseconds, that a chained event's `recorded_at` has fallen before that
    #: of an event chained earlier (a long transaction, a host's clock that is off): how far
    #: the time filters look past a time range along `seq` (audit/service.py _seq_bounds).
    time_disorder_us: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class AuditCheckpoint(db.Model):
    """A signed statement that the chain's event `seq` had `hash` at `recorded_at`."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(32))
    #: Ed25519 public key, raw 32 bytes, base64.
    public_key: Mapped[str] = mapped_column(String(64))
    #: Ed25519 signature over the canonical (seq, hash, recorded_at, key_id), base64.
    signature: Mapped[str] = mapped_column(String(128))
