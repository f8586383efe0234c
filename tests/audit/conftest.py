"""The audit tests' auditor, and the trail's guards lifted the way whoever holds the database
can lift them, inside the test's rolled-back transaction."""

import pytest
import sqlalchemy as sa

from audit.chain import event_hash
from audit.models import AuditChainHead, AuditEvent
from core.db import db


@pytest.fixture
def auditor(make):
    """A token of a privacy office that reads the trail (audit:read) and nothing else."""
    return make.token(make.organization(name="State Privacy Office", type="community_other"),
                      ["audit:read"])


def unlock(table: str) -> None:
    """Drop a trail table's append-only guard (rolled back with the test's transaction)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        for verb in ("update", "delete"):
            db.session.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))


def rewrite_and_rehash(seq: int, *, move_head: bool = True) -> None:
    """What a careful forger does: one event's reason rewritten, every hash from it on
    recomputed, and (`move_head`) the chain head moved along."""
    unlock("audit_events")
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == seq)
                       .values(reason="rewritten"))
    prev = db.session.scalar(sa.select(AuditEvent.prev_hash).where(AuditEvent.seq == seq))
    for event in db.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq >= seq)
                                    .order_by(AuditEvent.seq)).all():
        values = {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}
        values["prev_hash"] = prev
        prev = event_hash(values)
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == event.seq)
                           .values(prev_hash=values["prev_hash"], hash=prev))
    if move_head:
        db.session.execute(sa.update(AuditChainHead).values(hash=prev))
