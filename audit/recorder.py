"""`record(...)`: an audit event joins the caller's transaction and commits with it.

Events wait in the session until it commits, then are written in that same transaction, so
an event commits with the change it describes or not at all. On PostgreSQL they commit into
`audit_pending` and are chained in batches right after (audit/sealer.py, migration 0008); on
SQLite, whose one writer already holds the database, this module chains them at commit.
"""

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from audit.chain import ChainCannotGoOn, event_hash
from audit.models import (
    ACTIONS,
    OUTCOMES,
    RESOURCE_TYPES,
    AuditChainHead,
    AuditEvent,
    AuditListedFamily,
    AuditPending,
)
from core.db import db
from core.ids import new_id
from core.time import now

log = logging.getLogger(__name__)

_PENDING = "audit_pending"
#: A request's events commit within this long of being recorded, or not at all: what lets an
#: auditor take an export whose range ended a minute ago as final (README, The audit trail).
#: Nothing else bounds a request: gunicorn's gthread workers do not end one past its timeout.
COMMIT_WINDOW = timedelta(seconds=30)
_EVENTS = AuditEvent.__table__
_LISTED = AuditListedFamily.__table__
_HEAD = AuditChainHead.__table__
_PENDING_EVENTS = AuditPending.__table__
# Statements built once: they run on every audited commit.
_INSERT_PENDING = _PENDING_EVENTS.insert()
_INSERT_EVENTS = _EVENTS.insert()
_LOCK_HEAD = sa.select(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.newest_recorded_at,
                       _HEAD.c.time_disorder_us).where(_HEAD.c.id == 1).with_for_update()


class CommitTooLate(Exception):
    """A request's events would commit more than COMMIT_WINDOW after they were recorded: the
    request is rolled back and answered 503 instead."""


def record(*, action: str, outcome: str, reason: str, resource_type: str,
           resource_id=None, actor=None, organization_id: uuid.UUID | None = None,
           client_id: str | None = None, token_id: uuid.UUID | None = None,
           family_id: uuid.UUID | None = None, purpose: str | None = None,
           categories=(), consent_ids=(), family_ids=()) -> None:
    """Add an event to the current transaction; it is chained when the transaction commits.

    `actor` (anything with organization_id, client_id, token_id) fills the three actor fields.
    `family_ids`: every family an event about several disclosed (UUIDs, or their strings);
    raises ValueError for one that is not a UUID.
    Never pass names, birth dates, contact details or free text: ids and codes only.
    """
    if action not in ACTIONS or outcome not in OUTCOMES or resource_type not in RESOURCE_TYPES:
        raise ValueError(f"unknown audit action, outcome or resource type: {action!r}, "
                         f"{outcome!r}, {resource_type!r}")
    if actor is not None:
        organization_id = actor.organization_id
        client_id = actor.client_id
        token_id = actor.token_id
    values = {
        "id": new_id(),
        "recorded_at": now(),
        "action": action,
        "outcome": outcome,
        "reason": reason,
        "organization_id": organization_id,
        "client_id": client_id,
        "token_id": token_id,
        "purpose": purpose,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else str(resource_id),
        "family_id": family_id,
        "categories": sorted(categories),
        "consent_ids": sorted(str(c) for c in consent_ids),
        # One spelling per family, so the stored array and its hash do not depend on the caller.
        "family_ids": sorted({str(f if isinstance(f, uuid.UUID) else uuid.UUID(str(f)))
                              for f in family_ids}),
        **_request_fields(),
    }
    db.session.info.setdefault(_PENDING, []).append(values)


def record_told(told, *, family_id: uuid.UUID, actor=None) -> None:
    """Account what a request's answer told the caller of a family beyond what it asked to
    see (a grantor's standing checked, a date checked against the birth): a `read` under
    `told`, the engine's decision by which the caller sees those facts, when that is a
    consent (the custodian's own sight is no disclosure)."""
    if told is not None and told.consent_ids:
        record(action="read", outcome="permit", reason=told.reason, resource_type="family",
               resource_id=family_id, family_id=family_id, purpose=told.purpose,
               categories=told.permitted, consent_ids=told.consent_ids, actor=actor)


def record_operator(action: str, resource_type: str, resource_id) -> None:
    """Add an operator's command (a client issued or revoked, an organization added) to the
    current transaction: no organization, client or token acted (reason `operator`)."""
    record(action=action, outcome="permit", reason="operator", resource_type=resource_type,
           resource_id=resource_id)


def _request_fields() -> dict:
    if not has_request_context():
        return {"request_id": None, "request_method": None, "request_path": None,
                "request_ip": None}
    return {
        "request_id": g.get("request_id"),
        "request_method": request.method,
        "request_path": request.path[:512],  # never the query string
        "request_ip": (request.remote_addr or "")[:64] or None,
    }


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint released (SQLAlchemy fires before_commit for it too): its events wait
        # for the transaction's commit, as a rollback of an enclosing savepoint may yet take
        # them, and only them.
        return
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    # Write the change first, so the chain's head is held for as short a time as possible.
    session.flush()
    connection = session.connection()  # Core statements: this runs on every audited commit
    if connection.dialect.name == "postgresql":
        # Sealed into the chain after the commit, in PostgreSQL's order (audit/sealer.py):
        # no request waits for the chain's head, nor holds it through its commit's flush.
        connection.execute(_INSERT_PENDING, pending)
    else:
        _append_to_chain(connection, pending)
    # Last, once everything but the COMMIT itself is done: the flush above and the writes of
    # the events may have waited on locks too.
    if has_request_context() and now() - min(v["recorded_at"] for v in pending) \
            > COMMIT_WINDOW:
        # Waited on locks, a slow database or a starved worker: an event dated this far back
        # would reach the trail after exports of its time were taken as final.
        raise CommitTooLate(f"events recorded more than {COMMIT_WINDOW} before the commit")


def _append_to_chain(connection, pending: list[dict]) -> None:
    """Chain events in Python: SQLite's writer already holds the database (BEGIN IMMEDIATE)."""
    head = connection.execute(_LOCK_HEAD).one()
    seq, prev_hash = head.seq, head.hash
    newest, disorder = head.newest_recorded_at, head.time_disorder_us
    rows = []
    for values in pending:
        seq += 1
        row = {**values, "seq": seq, "prev_hash": prev_hash}
        row["hash"] = prev_hash = event_hash(row)
        rows.append(row)
        newest, disorder = time_order(newest, disorder, row["recorded_at"])
    try:
        connection.execute(_INSERT_EVENTS, rows)
    except sa.exc.IntegrityError:
        taken = _taken_seq(connection, rows)
        if taken is None:  # no row in the way: a fault of the code, told as such
            raise
        log.error("the audit chain cannot take the next event: a row holds seq %s; verify the "
                  "trail (flask audit verify)", taken)
        raise ChainCannotGoOn(f"a row written past the service holds seq {taken}") from None
    connection.execute(_HEAD.update().where(_HEAD.c.id == 1).values(
        seq=seq, hash=prev_hash, newest_recorded_at=newest, time_disorder_us=disorder))


def _taken_seq(connection, rows: list[dict]) -> int | None:
    """The seq of a row already holding a key one of `rows` needs (its seq, its id, its
    families' listing), if one does."""
    seqs, ids = [row["seq"] for row in rows], [row["id"] for row in rows]
    return connection.scalar(sa.union_all(
        sa.select(_EVENTS.c.seq).where(sa.or_(_EVENTS.c.seq.in_(seqs), _EVENTS.c.id.in_(ids))),
        sa.select(_LISTED.c.seq).where(_LISTED.c.seq.in_(seqs))).limit(1))


def time_order(newest, disorder: int, recorded_at) -> tuple:
    """The head's time order once an event recorded at `recorded_at` is chained after events
    whose newest time is `newest`: as the sealer keeps it (migration 0013)."""
    if newest is not None and recorded_at < newest:
        disorder = max(disorder, (newest - recorded_at) // timedelta(microseconds=1))
    return (recorded_at if newest is None else max(newest, recorded_at)), disorder


_SAVEPOINTS = "audit_pending_at_savepoints"


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction) -> None:
    """How many events waited when a savepoint began: its rollback forgets only those after."""
    if transaction.nested:
        session.info.setdefault(_SAVEPOINTS, {})[transaction] = len(
            session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, previous_transaction) -> None:
    """The events of what was rolled back go with it: those recorded since a savepoint began
    when it rolls back (what came before still commits, with the changes it describes), all
    of them when the transaction does."""
    if previous_transaction.nested:
        mark = session.info.get(_SAVEPOINTS, {}).pop(previous_transaction, 0)
        del session.info.get(_PENDING, [])[mark:]
    else:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_savepoints(session: Session, transaction) -> None:
    # Once the transaction ends (a savepoint's release is not that: its mark still serves
    # the enclosing savepoint's rollback).
    if transaction.parent is None:
        session.info.pop(_SAVEPOINTS, None)
