"""Faults inside a request: the database failing mid-send, the audit write failing. Nothing is
half-written, nothing is disclosed, and the client gets a clean 503 problem+json."""

import contextlib
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from audit.models import AuditEvent
from core.db import db
from referrals.models import Referral, ReferralEvent
from tests.conftest import assert_problem, bearer, count
from tests.referrals.conftest import FULL, send


@contextlib.contextmanager
def failing(app, table: str, cause=None):
    """The database 'fails' (as a dropped connection would, or with `cause`) on the first
    insert into `table`."""
    with app.app_context():
        engine = db.engine

    def fail(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            raise sa.exc.OperationalError(
                statement, None, cause or Exception("server closed the connection"))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail)


def _trail(app) -> tuple[int, int, int]:
    with app.app_context():
        return count(Referral), count(ReferralEvent), count(AuditEvent)


def _audit_table(app) -> str:
    """Where a request writes its audit events: PostgreSQL chains them from audit_pending."""
    with app.app_context():
        return "audit_pending" if db.engine.dialect.name == "postgresql" else "audit_events"


@pytest.mark.parametrize("write", ["referral", "timeline", "audit"])
def test_the_database_failing_mid_send_leaves_nothing_behind(app, client, make, net, write):
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    table = {"referral": "referrals", "timeline": "referral_events",
             "audit": _audit_table(app)}[write]
    before = _trail(app)
    with failing(app, table):
        response = send(client, net)
    body = assert_problem(response, 503, "service-unavailable")
    assert response.headers["Retry-After"]
    assert "Amara" not in response.get_data(as_text=True)
    assert "server closed" not in body["detail"]
    assert _trail(app) == before
    # The service is whole again at once: the same send succeeds.
    assert send(client, net).status_code == 201


@pytest.mark.parametrize("cause", [psycopg.errors.DeadlockDetected,
                                   psycopg.errors.SerializationFailure,
                                   psycopg.errors.QueryCanceled])
def test_a_send_refused_by_concurrent_ones_is_told_so_and_leaves_nothing(
        app, client, make, net, cause):
    """Not "the database is unreachable": the database is there, this request met others."""
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    before = _trail(app)
    with failing(app, "referrals", cause()):
        response = send(client, net)
    body = assert_problem(response, 503, "service-unavailable")
    assert response.headers["Retry-After"] == "1"
    assert "concurrent" in body["detail"] and "unreachable" not in body["detail"]
    assert _trail(app) == before


def test_a_failing_audit_write_discloses_nothing(app, client, make, net):
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    with failing(app, _audit_table(app)):
        response = client.get(f"/api/v1/families/{net.family.id}?purpose=referral",
                              headers=net.as_provider)
    assert_problem(response, 503, "service-unavailable")
    text = response.get_data(as_text=True)
    for family_fact in ("Amara", "Okafor", "+17345550101", "ngozi@example.org"):
        assert family_fact not in text
    assert client.get(f"/api/v1/families/{net.family.id}?purpose=referral",
                      headers=net.as_provider).status_code == 200


def test_a_failing_commit_of_a_read_is_a_503_without_the_family(app, client, make, monkeypatch):
    clinic = make.organization(name="Clinic")
    family = make.family(clinic)
    token = make.token(clinic)
    real_commit = db.session.commit

    def commit():
        raise sa.exc.OperationalError("COMMIT", None, Exception("could not fsync"))

    monkeypatch.setattr(db.session, "commit", commit)
    try:
        response = client.get(f"/api/v1/families/{family.id}", headers=bearer(token))
    finally:
        monkeypatch.setattr(db.session, "commit", real_commit)
    assert_problem(response, 503, "service-unavailable")
    assert "Amara" not in response.get_data(as_text=True)


@pytest.mark.no_db
@pytest.mark.parametrize("first", ["revocation", "resumption"])
def test_a_revocation_and_a_resumption_of_the_same_hold_take_turns(served, monkeypatch, first):
    """Both hold the family (the resumption with its referral, in one statement): whichever
    holds it first finishes before the other decides. A resumption after the revocation sees
    the consent gone (403); a revocation after the resumption holds the resumed referral in
    its own transaction. Either way the referral ends on hold, `consent_ended`."""
    import threading

    import consent.service
    import referrals.service
    from tests.conftest import Factory
    from tests.race_support import wait_until_blocked
    from tests.referrals.conftest import accepted, move, network

    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the two never overlap")
    make = Factory(served)
    net = network(make)
    consent_id = make.consent(net.family, [net.clinic, net.provider], categories=FULL).id
    client = served.test_client()
    rid, etag = accepted(client, net)
    assert move(client, rid, net.as_provider, etag, status="on_hold",
                reason="waitlist").status_code == 200

    holds_the_family = threading.Event()
    # Where each holds the family: the revocation takes it; the resumption holds it (with its
    # referral) since its access, and checks the consent here.
    module, name = ((consent.service, "lock_family") if first == "revocation"
                    else (referrals.service, "_check_resumable"))
    real = getattr(module, name)

    def then_wait_for_the_other(*args):
        real(*args)
        holds_the_family.set()
        wait_until_blocked(db.engine, 1)  # the other request waits for the family

    monkeypatch.setattr(module, name, then_wait_for_the_other)
    answers = {}

    def resume():
        answers["resume"] = served.test_client().post(
            f"/api/v1/referrals/{rid}/transitions", json={"status": "in_progress"},
            # Any version: the revocation relabels the hold, and it is the consent this
            # resumption must meet, not the version (a stale tag would be 412 first).
            headers={**net.as_provider, "If-Match": "*"})

    def revoke():
        answers["revoke"] = served.test_client().post(
            f"/api/v1/consents/{consent_id}/revoke", json={"reason": "Stop sharing."},
            headers=net.as_clinic)

    first_one, second_one = (revoke, resume) if first == "revocation" else (resume, revoke)
    threads = [threading.Thread(target=first_one)]
    threads[0].start()
    assert holds_the_family.wait(15)
    threads.append(threading.Thread(target=second_one))
    threads[1].start()
    for thread in threads:
        thread.join(30)
    assert answers["revoke"].status_code == 200, answers["revoke"].json
    if first == "revocation":
        assert_problem(answers["resume"], 403, "consent-required",
                       extra=["missing_categories"])
    else:
        assert answers["resume"].status_code == 200, answers["resume"].json
    db.session.rollback()
    referral = db.session.get(Referral, uuid.UUID(rid))
    assert (referral.status, referral.status_reason) == ("on_hold", "consent_ended")
    holds = db.session.scalars(sa.select(ReferralEvent).where(
        ReferralEvent.referral_id == referral.id, ReferralEvent.reason == "consent_ended"))
    assert len(list(holds)) == 1
