"""A row written past the service where the chain's next event belongs (found by a review).

Every reader of the trail seals what waits before it reads. With a forged row at the head's
next `seq`, sealing fails on it; that failure answered every auditor's read, and verification
itself, 500 (and the CLI printed a database error instead of its verdict) as soon as one
event waited, which on a served network is always. The reader now goes on with the chain as
it stands: verification names the planted row, and the trail can still be read around it.
"""

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from audit import recorder
from audit.chain import event_hash, verify
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditPending
from core.db import db
from organizations.models import Organization
from tests.audit.conftest import unlock
from tests.conftest import Factory, bearer, served_app


def _plant_after_head(engine) -> int:
    """As whoever can write to the database: a well-hashed event at the head's next seq,
    the append-only triggers bypassed, the head left alone; its seq."""
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        head = connection.execute(sa.select(AuditChainHead.seq)).scalar_one()
        last = connection.execute(sa.select(AuditEvent).where(AuditEvent.seq == head)).one()
        values = dict(last._mapping)
        values.update(seq=head + 1, id=uuid.uuid4(), reason="forged", prev_hash=last.hash)
        values["hash"] = event_hash(values)
        connection.execute(sa.insert(AuditEvent).values(**values))
    return head + 1


def _an_auditor_on_a_sound_trail(served):
    """(PostgreSQL) A client of the served app and an auditor's token, the trail verified."""
    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite chains each event at its commit: nothing waits to be sealed")
    make = Factory(served)
    auditor = make.token(make.organization(type="child_welfare"), ["audit:read"])
    client = served.test_client()
    assert client.get("/api/v1/audit/verify", headers=bearer(auditor)).json["valid"] is True
    return client, auditor


@pytest.mark.no_db
def test_verification_names_a_planted_row_while_events_wait(served, caplog):
    client, auditor = _an_auditor_on_a_sound_trail(served)
    with served.app_context():
        planted = _plant_after_head(db.engine)

    # Each of these answers records an event that then waits, unsealable, for the next.
    page = client.get("/api/v1/audit/events?limit=5", headers=bearer(auditor))
    verdict = client.get("/api/v1/audit/verify", headers=bearer(auditor))
    one = client.get(f"/api/v1/audit/events/{planted - 1}", headers=bearer(auditor))
    forged = client.get(f"/api/v1/audit/events/{planted}", headers=bearer(auditor))
    command = served.test_cli_runner().invoke(args=["audit", "verify"])

    assert page.status_code == 200, page.get_data(as_text=True)
    # Not served as an event of the trail: it lies past the head (a review).
    assert planted not in [e["seq"] for e in page.json["items"]]
    assert forged.status_code == 404
    assert verdict.status_code == 200, verdict.get_data(as_text=True)
    assert verdict.json["valid"] is False
    assert verdict.json["first_bad_seq"] == planted
    assert "beyond the chain head" in verdict.json["reason"]
    assert one.status_code == 200
    assert command.exit_code == 1, command.output
    printed = json.loads(command.stdout)
    assert (printed["valid"], printed["first_bad_seq"]) == (False, planted)
    with served.app_context():  # kept, not lost: sealed once the row is dealt with
        waiting = db.session.scalars(sa.select(AuditPending.request_id)).all()
        assert one.headers["X-Request-ID"] in waiting
    assert "the audit chain cannot take the events waiting" in caplog.text


def test_on_sqlite_a_planted_row_fails_requests_closed_with_a_503(app, client, make, caplog):
    """SQLite chains each event at its commit: with a row where the next belongs, no audited
    request can commit its event, so none discloses or changes anything; each is answered
    503 (a database error read as the code's fault answered 500), and verification names
    the row."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL seals after the commit (the test above)")
    org = make.organization()
    token = make.token(org, ["directory:write"])
    with app.app_context():
        unlock("audit_events")
        head = db.session.scalar(sa.select(AuditChainHead.seq))
        last = db.session.get(AuditEvent, head)
        values = {c.key: getattr(last, c.key) for c in AuditEvent.__table__.columns}
        values.update(seq=head + 1, id=uuid.uuid4(), reason="forged", prev_hash=last.hash)
        values["hash"] = event_hash(values)
        db.session.execute(sa.insert(AuditEvent).values(**values))
        db.session.commit()

    response = client.patch(f"/api/v1/organizations/{org.id}",
                            json={"accepting_referrals": True}, headers=bearer(token))

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json["type"] == "/problems/service-unavailable"
    with app.app_context():
        assert db.session.get(Organization, org.id).accepting_referrals is not True
        verdict = verify(db.session)
    assert (verdict.valid, verdict.first_bad_seq) == (False, head + 1)
    assert f"a row holds seq {head + 1}" in caplog.text


#: Waiting rows written past the service that the chain cannot take, though no row lies past
#: its head, and what verification names: one reusing a chained event's id; one naming a
#: family by something that is not an id.
_IN_THE_WAY = {
    "a chained event's id": ({}, "a row written past the service already holds its key "
                                 "uq_audit_events_id"),
    "a family that is no id": ({"id": None, "family_ids": ["not-a-uuid"]},
                               "a waiting event is refused (InvalidTextRepresentation)"),
}


@pytest.mark.no_db
@pytest.mark.parametrize("planted", list(_IN_THE_WAY))
def test_verification_names_a_chain_that_cannot_go_on(served, caplog, planted):
    """Such a row stops every seal as surely as one past the head: the chain verifies as far
    as it goes, verification says it can go no further and why, the trail is still read as
    it stands, and no checkpoint is signed as if it could go on (found by reviews: it
    answered valid while the trail had stopped; a refused row answered every read 500)."""
    client, auditor = _an_auditor_on_a_sound_trail(served)
    kept = json.loads(served.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    changes, why = _IN_THE_WAY[planted]
    with served.app_context(), db.engine.begin() as connection:
        first = connection.execute(sa.select(AuditEvent).where(AuditEvent.seq == 1)).one()
        values = {c.key: getattr(first, c.key) for c in AuditPending.__table__.columns}
        values["recorded_at"] = values["recorded_at"].replace(year=2000)  # sealed first
        values.update(changes)
        values["id"] = values["id"] or uuid.uuid4()
        connection.execute(sa.insert(AuditPending).values(**values))
        head = connection.scalar(sa.select(AuditChainHead.seq))

    verdict = client.get("/api/v1/audit/verify", headers=bearer(auditor))
    page = client.get("/api/v1/audit/events?limit=5", headers=bearer(auditor))
    export = client.get("/api/v1/audit/export?since=2000-01-01T00:00:00Z"
                        "&until=2000-01-31T00:00:00Z", headers=bearer(auditor))
    still = client.post("/api/v1/audit/checkpoints/verify", json=kept, headers=bearer(auditor))
    command = served.test_cli_runner().invoke(args=["audit", "verify"])
    signed = served.test_cli_runner().invoke(args=["audit", "checkpoint"])

    assert verdict.status_code == 200, verdict.get_data(as_text=True)
    assert (verdict.json["valid"], verdict.json["first_bad_seq"]) == (False, head + 1)
    assert verdict.json["reason"] == (f"the events waiting to be chained after event {head} "
                                      f"cannot be: {why}")
    assert page.status_code == 200
    assert export.status_code == 200, export.get_data(as_text=True)  # read as it stands
    assert still.status_code == 200 and still.json["valid"] is True, still.get_data(as_text=True)
    assert command.exit_code == 1, command.output
    assert signed.exit_code == 1 and why in signed.output, signed.output
    assert why in caplog.text


def test_on_sqlite_a_fault_of_the_code_is_not_told_as_a_planted_row(app):
    """An event the chain refuses for want of a field (no row in its way) is the code's
    fault: the database error goes on as one, not as a chain blocked (a review)."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL refuses it at the request's own insert")
        recorder.record(action="read", outcome="permit", reason="r", resource_type="api")
        db.session.info[recorder._PENDING][0]["reason"] = None
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()


@pytest.mark.no_db
def test_the_scheduled_checkpoint_passes_over_a_chain_that_cannot_go_on(empty_database,
                                                                          caplog):
    """After a commit, a worker checkpoints the head on its schedule: with a waiting event the
    chain refuses, it signs nothing, and the request it follows is answered as ever (a
    review: logged as a failed hook, with a trace, once per interval per worker)."""
    if empty_database.startswith("sqlite"):
        pytest.skip("SQLite chains each event at its commit: nothing waits to be sealed")
    with served_app(empty_database, AUDIT_CHECKPOINT_INTERVAL=1) as served:
        make = Factory(served)
        org = make.organization()
        token = make.token(org, ["directory:read"])
        with db.engine.begin() as connection:
            waiting = connection.execute(sa.select(AuditPending).limit(1)).one()
            values = dict(waiting._mapping)
            values.update(id=uuid.uuid4(), family_ids=["not-a-uuid"],
                          recorded_at=waiting.recorded_at.replace(year=2000))
            connection.execute(sa.insert(AuditPending).values(**values))
            signed = connection.scalar(sa.select(sa.func.count()).select_from(AuditCheckpoint))
        served.extensions["audit_schedule"]["next_look"] = datetime.min.replace(tzinfo=UTC)

        response = served.test_client().get("/api/v1/me", headers=bearer(token))

        assert response.status_code == 200
        assert served.extensions["audit_schedule"]["next_look"] > datetime.now(UTC)  # it looked
        with db.engine.connect() as connection:
            assert connection.scalar(
                sa.select(sa.func.count()).select_from(AuditCheckpoint)) == signed
        assert "after-commit hook failed" not in caplog.text
        assert "a waiting event is refused" in caplog.text
