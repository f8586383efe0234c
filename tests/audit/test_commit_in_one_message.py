"""On PostgreSQL a request's events and its COMMIT go to the database in one message.

The recorder binds the events' values on the client (psycopg's `sql.Literal`) into a
simple-query message that ends the transaction: one round trip fewer on every audited
request. These tests hold it to what the separate INSERT and COMMIT gave: the event stored as
recorded, whatever characters it holds; the change and its events committed together or not
at all; and the 30 s window in which a request's events commit, or never do, kept even when
the insert waits on a lock.
"""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

from audit import recorder
from audit.models import AuditPending
from core import time as clock
from core.db import db
from organizations.models import Organization
from tests.conftest import Factory, bearer, count, make_app, statements_sent

_NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _on_postgresql(app) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite chains the events at its commit, in statements of their own")


@pytest.mark.no_db
def test_an_audited_request_commits_with_the_message_that_writes_its_events(served):
    _on_postgresql(served)
    make = Factory(served)
    org = make.organization()
    token = make.token(org, ["directory:write"])
    status_after = []

    def note(conn, cursor, statement, *_):
        status_after.append((statement, conn.connection.dbapi_connection.info.transaction_status))

    with served.app_context():
        engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", note)
    try:
        response = served.test_client().patch(f"/api/v1/organizations/{org.id}",
                                              json={"accepting_referrals": True},
                                              headers=bearer(token))
    finally:
        sa.event.remove(engine, "after_cursor_execute", note)

    assert response.status_code == 200, response.get_data(as_text=True)
    last, status = status_after[-1]
    assert last.startswith('INSERT INTO "audit_pending"') and last.endswith("; COMMIT"), last
    assert status == TransactionStatus.IDLE  # the transaction ended with that message
    with served.app_context():
        assert db.session.get(Organization, org.id).accepting_referrals is True
        events = db.session.scalars(sa.select(AuditPending).where(
            AuditPending.request_id == response.headers["X-Request-ID"])).all()
        assert [(e.action, e.outcome) for e in events] == [("update", "permit")]


_AWKWARD = "x'); DROP TABLE audit_pending; --\\%s%%0a\n\t\"é😀"


@pytest.mark.no_db
def test_the_values_bound_on_the_client_are_stored_as_recorded(served):
    """Every kind of value an event holds, with the characters SQL quoting and psycopg's
    placeholders care about, comes back as it was recorded."""
    _on_postgresql(served)
    family_ids = [uuid.uuid4(), uuid.uuid4()]
    consent_id = uuid.uuid4()
    with served.app_context(), served.test_request_context(
            "/api/v1/whatever", method="POST", environ_base={"REMOTE_ADDR": "203.0.113.9"}):
        recorder.record(action="read", outcome="permit", reason="consent",
                        resource_type="family", resource_id=_AWKWARD[:64],
                        organization_id=uuid.uuid4(), client_id=_AWKWARD[:64],
                        token_id=uuid.uuid4(), family_id=family_ids[0], purpose="referral",
                        categories=["identity", "contact"], consent_ids=[consent_id],
                        family_ids=family_ids)
        recorded = dict(db.session.info[recorder._PENDING][0])
        db.session.commit()
    with served.app_context():
        stored = db.session.get(AuditPending, recorded["id"])
        assert {name: getattr(stored, name) for name in recorded} == recorded
        assert count(AuditPending) == 1  # and the table is still there


@pytest.mark.no_db
def test_the_change_and_its_events_fail_together(served):
    """An insert the database refuses (an id already on the trail) takes the request's change
    with it, and the COMMIT after it in the message never runs."""
    _on_postgresql(served)
    make = Factory(served)
    org = make.organization()
    with served.app_context():
        before = count(AuditPending)
        taken = db.session.scalars(sa.select(AuditPending.id)).first()
        assert taken is not None  # the organization's creation is on the trail
        db.session.get(Organization, org.id).accepting_referrals = True
        recorder.record(action="update", outcome="permit", reason="operator",
                        resource_type="organization", resource_id=org.id)
        db.session.info[recorder._PENDING][0]["id"] = taken
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()
    with served.app_context():
        assert db.session.get(Organization, org.id).accepting_referrals is not True
        assert count(AuditPending) == before


@pytest.mark.no_db
def test_an_insert_waiting_past_the_window_commits_nothing(served):
    """The window is checked before the message is sent, so the insert's own wait is bounded
    by what is left of it: a request whose insert waited on its client's turn (held by a
    revocation) past the window is answered 503 with nothing committed, not 200 late."""
    _on_postgresql(served)
    make = Factory(served)
    org = make.organization()
    oauth_client, _ = make.client(org, ["directory:write"])
    token = make.token(org, ["directory:write"], oauth_client=oauth_client)
    with served.app_context():
        engine = db.engine
        before = count(AuditPending)
    revocation = engine.connect()
    held = revocation.begin()
    revocation.execute(sa.select(sa.func.pg_advisory_xact_lock(
        sa.func.oauth_client_turn(str(oauth_client.client_id)))))
    slow = make_app(served.config["SQLALCHEMY_DATABASE_URI"])
    # Recorded at noon; committing at 29.8 s past it leaves 200 ms for the insert.
    slow.after_request(lambda response: (clock.freeze(_NOON + timedelta(seconds=29.8)),
                                         response)[1])
    answers = {}

    def change():
        answers["response"] = slow.test_client().patch(
            f"/api/v1/organizations/{org.id}", json={"accepting_referrals": True},
            headers=bearer(token))

    clock.freeze(_NOON)
    thread = threading.Thread(target=change)
    started = time.monotonic()
    thread.start()
    try:
        thread.join(timeout=5)
        waited = time.monotonic() - started
    finally:
        held.rollback()  # the revocation ends, in any case
        revocation.close()
        thread.join(timeout=15)
        clock.freeze(None)
        with slow.app_context():
            db.engine.dispose()

    assert answers["response"].status_code == 503, answers["response"].get_data(as_text=True)
    assert waited < 5, "the insert waited for the lock's end: its wait was not bounded"
    with served.app_context():
        assert db.session.get(Organization, org.id).accepting_referrals is not True
        assert count(AuditPending) == before


def test_the_suites_savepoints_keep_the_separate_commit(app, make, client):
    """Inside a transaction someone else holds (the suite's rolled-back one), the session's
    commit only releases a savepoint: the recorder must not end that transaction."""
    org = make.organization()
    token = make.token(org, ["directory:write"])
    with statements_sent(app) as sent:
        response = client.patch(f"/api/v1/organizations/{org.id}",
                                json={"accepting_referrals": True}, headers=bearer(token))
    assert response.status_code == 200
    assert not any("COMMIT" in statement for statement, _ in sent)
