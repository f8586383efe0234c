"""A log of many batches is verified batch by batch (on PostgreSQL, several at once on
connections of their own, which see committed events only: hence a served app's database) and
every break is still found, the first one reported, wherever it falls against the batches."""

import uuid

import pytest
import sqlalchemy as sa

import audit
from audit import chain
from audit.models import AuditEvent, AuditListedFamily
from audit.sealer import seal_committed
from core.db import db
from tests.audit.conftest import unlock

BATCH = 4
EVENTS = 5 * BATCH + 2  # six batches, the last one short
FAMILY = uuid.UUID("cccccccc-cccc-4ccc-8ccc-cccccccccccc")

pytestmark = pytest.mark.no_db  # the served app's own database, its commits real


@pytest.fixture
def log(served, monkeypatch):
    """EVENTS committed events, every third listing FAMILY, in batches of BATCH."""
    monkeypatch.setattr(chain, "VERIFY_BATCH", BATCH)
    for n in range(EVENTS):
        audit.record(action="read", outcome="permit", reason=f"event-{n + 1}",
                     resource_type="audit_event", family_ids=[FAMILY] if n % 3 == 0 else ())
        db.session.commit()
    seal_committed()
    return served


def _connections_used(engine, run):
    """What `run` returns, and how many connections it checked out of the pool."""
    checked_out = []

    def on_checkout(dbapi_connection, record, proxy):
        checked_out.append(id(dbapi_connection))

    sa.event.listen(engine, "checkout", on_checkout)
    try:
        return run(), len(set(checked_out))
    finally:
        sa.event.remove(engine, "checkout", on_checkout)


def test_a_log_of_many_batches_verifies_whole_and_by_range(log):
    verdict, connections = _connections_used(db.engine, lambda: chain.verify(db.session))
    assert verdict.valid and verdict.checked == EVENTS, verdict
    if db.engine.dialect.name == "postgresql":
        assert connections > 1  # the batches were checked at once, not in the session alone
    for low, high in ((1, BATCH), (BATCH, 2 * BATCH + 1), (BATCH + 1, EVENTS), (7, 7)):
        verdict = chain.verify(db.session, low, high)
        assert verdict.valid and verdict.checked == high - low + 1, (low, high, verdict)


def _edit(seq, **values):
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == seq).values(**values))


def _delete(*seqs):
    db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq.in_(seqs)))


def _misfile(seq):
    unlock("audit_listed_families")
    db.session.execute(sa.delete(AuditListedFamily).where(AuditListedFamily.seq == seq))


#: Each: the change, the first bad seq, what the reason says. seq 4 ends the first batch, 5
#: starts the second; 13 and 19 list FAMILY.
BREAKS = {
    "a field changed deep in the log": (lambda: _edit(14, reason="edited"), 14, "does not hash"),
    "the last event of a batch changed": (lambda: _edit(8, reason="edited"), 8,
                                          "does not hash"),
    "the first event of a batch deleted": (lambda: _delete(9), 9, "missing"),
    "a whole batch deleted": (lambda: _delete(*range(9, 13)), 9, "missing"),
    "the last event of a batch rehashed alone": (lambda: _edit(12, hash="0" * 64), 12,
                                                 "does not hash"),
    "the first event of a batch chained elsewhere": (lambda: _edit(13, prev_hash="0" * 64), 13,
                                                     "prev_hash"),
    "the tail cut": (lambda: _delete(EVENTS - 1, EVENTS), EVENTS - 1, "missing"),
    "two breaks, in later and earlier batches": (
        lambda: (_edit(18, reason="edited"), _edit(6, reason="edited")), 6, "does not hash"),
    "a family unlisted after a break": (lambda: (_edit(10, reason="edited"), _misfile(19)), 10,
                                        "does not hash"),
    "a family unlisted before a break": (lambda: (_misfile(13), _edit(18, reason="edited")), 13,
                                         "audit_listed_families"),
}


@pytest.mark.parametrize("name", list(BREAKS))
def test_the_first_break_is_found_wherever_it_falls(log, name):
    change, first_bad, why = BREAKS[name]
    unlock("audit_events")
    change()
    db.session.commit()
    verdict = chain.verify(db.session)
    assert not verdict.valid
    assert verdict.first_bad_seq == first_bad, verdict
    assert why in verdict.reason, verdict
    assert verdict.checked == first_bad - 1


def test_batches_checked_longer_than_the_idle_timeout_still_verify(log, monkeypatch):
    """The session's own transaction does not sit idle while its batches are checked on
    other connections: past idle_in_transaction_session_timeout (the statement timeout's,
    some millions of events' checking) PostgreSQL would end its connection, and the
    verification fail after every batch had verified (found by a review of the change).
    Here the timeout is 0.5 s and each batch takes a second."""
    import time

    from audit.service import verify_log
    from core.db import begin_read_only

    if db.engine.dialect.name != "postgresql":
        pytest.skip("the batches run at once on PostgreSQL only")
    check_batch = chain._check_batch

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return check_batch(*args, **kwargs)

    monkeypatch.setattr(chain, "_check_batch", slow)
    begin_read_only()
    db.session.execute(sa.text("SET idle_in_transaction_session_timeout = 500"))
    try:
        verdict = verify_log()
    finally:
        db.session.rollback()
        db.session.execute(sa.text("RESET idle_in_transaction_session_timeout"))
        db.session.rollback()
    assert verdict["valid"] and verdict["checked"] == EVENTS, verdict
