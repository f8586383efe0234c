"""Faults inside a request: the database failing mid-send, the audit write failing. Nothing is
half-written, nothing is disclosed, and the client gets a clean 503 problem+json."""

import contextlib
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from audit.models import AuditEvent
from core.db import db
from referrals.models import Referral, ReferralEvent
from tests.conftest import assert_problem, bearer, count
from tests.referrals.conftest import FULL, send


@contextlib.contextmanager
def failing(app, table: str):
    """The database 'fails' (as a dropped connection would) on the first insert into `table`."""
    with app.app_context():
        engine = db.engine

    def fail(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            raise sa.exc.OperationalError(statement, None,
                                          Exception("server closed the connection"))

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
def test_a_revocation_and_a_resumption_of_the_same_hold_take_turns(served, monkeypatch):
    """The resumption holds the referral's row and then waits for the family's, which the
    revocation holds: the revocation skips that row instead of waiting for it (a deadlock),
    and the resumption, deciding once it has the family, sees the consent gone."""
    import threading

    import consent.service
    import referrals.service
    from tests.conftest import Factory
    from tests.referrals.conftest import accepted, move, network

    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the two never hold a row each")
    make = Factory(served)
    net = network(make)
    consent_id = make.consent(net.family, [net.clinic, net.provider], categories=FULL).id
    client = served.test_client()
    rid, etag = accepted(client, net)
    etag = move(client, rid, net.as_provider, etag, status="on_hold",
                reason="waitlist").headers["ETag"]

    resuming_has_row, revoking_has_family = threading.Event(), threading.Event()
    lock_for_resume, lock_for_revoke = referrals.service.lock_family, consent.service.lock_family

    def resume_lock(family_id):
        resuming_has_row.set()
        revoking_has_family.wait(5)
        lock_for_resume(family_id)

    def revoke_lock(family_id):
        lock_for_revoke(family_id)
        revoking_has_family.set()

    monkeypatch.setattr(referrals.service, "lock_family", resume_lock)
    monkeypatch.setattr(consent.service, "lock_family", revoke_lock)
    answers = {}

    def resume():
        answers["resume"] = served.test_client().post(
            f"/api/v1/referrals/{rid}/transitions", json={"status": "in_progress"},
            headers={**net.as_provider, "If-Match": etag})

    def revoke():
        resuming_has_row.wait(5)
        answers["revoke"] = served.test_client().post(
            f"/api/v1/consents/{consent_id}/revoke", json={"reason": "Stop sharing."},
            headers=net.as_clinic)

    threads = [threading.Thread(target=resume), threading.Thread(target=revoke)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers["revoke"].status_code == 200, answers["revoke"].json
    assert_problem(answers["resume"], 403, "consent-required", extra=["missing_categories"])
    # Skipped by the revocation, the receiver's hold becomes consent_ended at its next look.
    client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider)
    db.session.rollback()
    referral = db.session.get(Referral, uuid.UUID(rid))
    assert (referral.status, referral.status_reason) == ("on_hold", "consent_ended")
