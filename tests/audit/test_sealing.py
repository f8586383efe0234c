"""PostgreSQL seals committed events into the chain after their commit (migration 0008).

A request's events commit with its change into `audit_pending`; a sealer chains them. These
tests see the events wait, readers of the trail seal before they read, the pending rows are
as append-only as the chain, and each serving process seals in the background.
"""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

import audit
import audit.service
from audit.chain import verify
from audit.models import AuditEvent, AuditPending
from audit.sealer import seal, seal_committed
from core.db import db
from tests.conftest import audit_events, basic, bearer, count

pytestmark = pytest.mark.unsealed


@pytest.fixture(autouse=True)
def _postgresql_only(app):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite chains each event at its commit: nothing waits to be sealed")


def _issue_token(client, make):
    """A client (its operator's events sealed out of the way), then one token it is issued:
    one event waiting to be sealed."""
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    with make.app.app_context():
        seal(db.session.connection())
        db.session.commit()
    answer = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers=basic(oauth_client.client_id, secret))
    assert answer.status_code == 200
    return oauth_client


def test_a_committed_event_waits_in_pending_until_sealed_then_chains(app, client, make):
    oauth_client = _issue_token(client, make)
    with app.app_context():
        before = count(AuditEvent)  # the operator's, sealed
        assert count(AuditPending) == 1
        assert seal(db.session.connection()) == 1
        [event] = audit_events(resource_type="access_token")
        assert (event.seq, event.action, event.client_id) == (before + 1, "create",
                                                              oauth_client.client_id)
        assert count(AuditPending) == 0
        assert verify(db.session).valid
        assert seal(db.session.connection()) == 0  # nothing left: sealing again is a no-op


def test_events_are_sealed_in_the_order_they_were_recorded_across_batches(app, monkeypatch):
    monkeypatch.setattr(audit.sealer, "SEAL_BATCH", 3)  # several batches in one seal
    with app.app_context():
        for n in range(8):
            _commit_event(f"r{n}")
        assert seal(db.session.connection()) == 8
        assert [e.reason for e in audit_events()] == [f"r{n}" for n in range(8)]
        verdict = verify(db.session)
        assert verdict.valid and verdict.checked == 8


def test_an_auditor_sees_every_event_committed_before_the_request(app, client, make):
    oauth_client = _issue_token(client, make)
    auditors = make.organization(name="Network Privacy Office", type="community_other")
    token = make.token(auditors, ["audit:read"])
    page = client.get("/api/v1/audit/events?resource_type=access_token",
                      headers=bearer(token))
    assert page.status_code == 200
    assert [e["actor"]["client_id"] for e in page.json["items"]] == [oauth_client.client_id]
    issued = page.json["items"][0]["seq"]
    verdict = client.get("/api/v1/audit/verify", headers=bearer(token))
    assert verdict.json["valid"] is True
    with app.app_context():
        # Every event committed before the reads is chained: the search's included.
        assert count(AuditPending) == 0
        assert verdict.json["head"]["seq"] == count(AuditEvent)
    assert client.get(f"/api/v1/audit/events/{issued}",
                      headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("statement", [
    "UPDATE audit_pending SET reason = 'edited'",
    "DELETE FROM audit_pending",
    "TRUNCATE audit_pending",
    # No session setting opens the way: an event leaves only once it is in the chain.
    "SELECT set_config('audit.sealing', 'on', true); DELETE FROM audit_pending",
])
def test_a_pending_event_leaves_only_for_the_chain(app, client, make, statement):
    _issue_token(client, make)
    with app.app_context():
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                db.session.begin_nested():
            db.session.execute(sa.text(statement))
        assert count(AuditPending) == 1
        assert seal(db.session.connection()) == 1


@pytest.mark.parametrize("place", ["zero", "negative", "past_the_head"])
def test_an_event_written_beside_the_chain_does_not_let_a_pending_one_go(app, client, make,
                                                                        place):
    _issue_token(client, make)
    with app.app_context():
        head = db.session.scalar(sa.text("SELECT seq FROM audit_chain_head"))
        seq = {"zero": 0, "negative": -1, "past_the_head": head + 1}[place]
        # Below 1 the row itself is refused (seq starts at 1); past the head, the delete.
        with pytest.raises(sa.exc.DatabaseError, match="append-only|seq_from_1"), \
                db.session.begin_nested():
            db.session.execute(sa.text(
                "INSERT INTO audit_events (id, recorded_at, action, outcome, reason, "
                "resource_type, categories, consent_ids, seq, prev_hash, hash) "
                "SELECT id, recorded_at, action, outcome, reason, resource_type, categories, "
                "consent_ids, :seq, '', '' FROM audit_pending"), {"seq": seq})
            db.session.execute(sa.text("DELETE FROM audit_pending"))
        assert count(AuditPending) == 1


def _commit_event(reason: str) -> None:
    audit.record(action="create", outcome="permit", reason=reason, resource_type="audit_event")
    db.session.commit()


@pytest.mark.no_db
def test_a_reader_seals_what_waited_when_it_came_a_batch_per_transaction(served, monkeypatch):
    monkeypatch.setattr(audit.sealer, "SEAL_BATCH", 3)
    for n in range(7):
        _commit_event(f"r{n}")
    assert seal_committed() == 7  # three batches: 3, 3, 1
    assert [e.reason for e in audit_events()] == [f"r{n}" for n in range(7)]
    db.session.rollback()
    for n in range(7, 14):
        _commit_event(f"r{n}")
    # `most`: what keeps arriving is left to the next sealer.
    assert audit.sealer.seal_batches(db.engine, most=4) == 6
    assert count(AuditPending) == 1
    assert verify(db.session).valid


def test_a_row_the_chain_would_refuse_fails_its_own_commit(app):
    """Not the sealer's next batch: the request that wrote it fails, and nothing commits."""
    with app.app_context(), \
            pytest.raises(sa.exc.IntegrityError, match="ck_audit_pending_action"), \
            db.session.begin_nested():
        db.session.execute(sa.insert(AuditPending.__table__).values(
            id=uuid.uuid4(), recorded_at=datetime.now(UTC), action="erase",
            outcome="permit", reason="x", resource_type="audit_event", categories=[],
            consent_ids=[]))


@pytest.mark.parametrize("read", [
    lambda c, token, family: c.get("/api/v1/audit/events", headers=bearer(token)),
    lambda c, token, family: c.get("/api/v1/audit/events/1", headers=bearer(token)),
    lambda c, token, family: c.get(
        f"/api/v1/audit/export?since={datetime.now(UTC) - timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
        f"&until={datetime.now(UTC) + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
        headers=bearer(token)),
    lambda c, token, family: c.get("/api/v1/audit/verify", headers=bearer(token)),
    lambda c, token, family: c.get(f"/api/v1/families/{family.id}/disclosures",
                                   headers=bearer(token)),
], ids=["events", "event", "export", "verify", "disclosures"])
def test_every_reader_of_the_trail_seals_first(app, client, make, monkeypatch, read):
    sealed = []
    monkeypatch.setattr(audit.service, "seal_committed",
                        lambda **kw: sealed.append(audit.sealer.seal_committed(**kw)))
    _issue_token(client, make)
    auditors = make.organization(name="Network Privacy Office", type="community_other")
    token = make.token(auditors, ["audit:read"])
    family = make.family(make.organization(name="Elm Street Pediatrics",
                                           type="pediatric_primary_care"))
    answer = read(client, token, family)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    answer.get_data()  # an export seals as it starts streaming
    assert sealed and sealed[0] >= 1
    with app.app_context():
        assert count(AuditEvent) >= 1


def test_pending_events_are_written_to_the_wal(app):
    """Committed events wait there: a crash before sealing must not lose them."""
    with app.app_context():
        persistence = db.session.scalar(sa.text(
            "SELECT relpersistence FROM pg_class WHERE relname = 'audit_pending'"))
    assert persistence == "p"


@pytest.mark.no_db
def test_a_sealer_finding_another_at_work_skips_or_waits_its_turn(served):
    _commit_event("first")
    busy = db.engine.connect()
    transaction = busy.begin()
    assert seal(busy) == 1  # holds the head until it commits
    _commit_event("second")
    with db.engine.begin() as other:
        assert seal(other, wait=False) == 0  # another is at work: skip the turn

    waited = {}

    def reader():
        with served.app_context(), db.engine.begin() as connection:
            waited["sealed"] = seal(connection)  # waits, then seals the second

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # queued behind the busy sealer
    transaction.commit()
    busy.close()
    thread.join(30)
    assert waited == {"sealed": 1}
    assert [e.reason for e in audit_events()] == ["first", "second"]
    assert verify(db.session).valid


@pytest.mark.no_db
def test_a_reader_seals_without_holding_the_head_through_its_request(served):
    _commit_event("first")
    assert seal_committed() == 1
    assert count(AuditEvent) == 1  # the reader's transaction is open, reading
    with served.app_context():  # meanwhile a request commits another event
        _commit_event("second")
    with db.engine.begin() as other:
        assert seal(other, wait=False) == 1  # the head was free: not skipped
    db.session.rollback()
    assert [e.reason for e in audit_events()] == ["first", "second"]


@pytest.mark.no_db
def test_a_short_reader_seals_a_small_backlog_in_its_own_transaction(served):
    """One commit for the seal and the reader's own event; the head is held until then."""
    _commit_event("first")
    _commit_event("second")
    assert seal_committed(in_transaction=True) == 2
    assert [e.reason for e in audit_events()] == ["first", "second"]  # this transaction sees them
    with served.app_context():
        _commit_event("third")
    with db.engine.begin() as other:
        assert other.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
        assert seal(other, wait=False) == 0  # the reader holds the head: skip the turn
    db.session.rollback()  # the reader failed: its seal is undone, nothing is lost
    assert (count(AuditEvent), count(AuditPending)) == (0, 3)
    db.session.rollback()
    assert seal_committed(in_transaction=True) == 3
    db.session.commit()
    with db.engine.begin() as other:
        assert other.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 3
    assert verify(db.session).valid


@pytest.mark.no_db
def test_a_short_reader_seals_a_large_backlog_outside_its_transaction(served, monkeypatch):
    monkeypatch.setattr(audit.sealer, "SEAL_BATCH", 3)
    for n in range(5):
        _commit_event(f"r{n}")
    assert seal_committed(in_transaction=True) == 5  # two batches of their own: 3, 2
    with db.engine.begin() as other:  # committed, the head free again
        assert other.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 5
        assert seal(other, wait=False) == 0
    db.session.rollback()
    assert [e.reason for e in audit_events()] == [f"r{n}" for n in range(5)]


@pytest.mark.no_db
def test_each_serving_process_seals_in_the_background(served):
    served.config["AUDIT_SEAL_INTERVAL_MS"] = 20
    audit.sealer.init_app(served)
    _commit_event("waiting")
    assert count(AuditEvent) == 0
    served.test_client().get("/healthz")  # the process's first request starts it
    deadline = time.monotonic() + 30
    while count(AuditEvent) == 0 and time.monotonic() < deadline:
        db.session.rollback()
        time.sleep(0.02)
    assert [e.reason for e in audit_events()] == ["waiting"]
    assert count(AuditPending) == 0
