"""An auditor's client may read an export slowly: the service holds no transaction open while
the client reads, so the database's idle-in-transaction timeout never cuts the stream short
(PostgreSQL ends such a session; found by a race review: 6,990 of 27,802 events, then a
line cut mid-way)."""

import json
import time
from datetime import timedelta

import pytest

import audit
from audit import service as audit_service
from core import time as clock
from core.db import db
from tests.conftest import Factory, bearer, served_app

IDLE_MS = 300


@pytest.fixture
def short_idle(empty_database):
    """The service on a fresh database with a short idle-in-transaction timeout (the
    production setting follows DATABASE_STATEMENT_TIMEOUT_MS, lowered to run quickly).
    Migrated first with the usual settings: on a loaded machine, the migrations' one
    transaction idled past 300 ms between two of its statements and was ended."""
    with served_app(empty_database):
        pass
    with served_app(empty_database, SQLALCHEMY_ENGINE_OPTIONS={
        "pool_pre_ping": True, "hide_parameters": True,
        **({"connect_args": {"options": f"-c idle_in_transaction_session_timeout={IDLE_MS}"}}
           if empty_database.startswith("postgresql") else {})}) as served:
        yield served


def five_events_in_batches_of_two(served, monkeypatch) -> tuple[str, dict]:
    """Five events recorded, and exports read in batches of two: the URL of an export over
    them, and an auditor's headers."""
    monkeypatch.setattr(audit_service, "EXPORT_BATCH", 2)
    make = Factory(served)
    token = make.token(make.organization(name="Privacy Office", type="community_other"),
                       ["audit:read"])
    with served.app_context():
        for n in range(5):
            audit.record(action="read", outcome="permit", reason=f"event-{n}",
                         resource_type="audit_event")
            db.session.commit()
    since = (clock.now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    until = (clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return f"/api/v1/audit/export?since={since}&until={until}", bearer(token)


@pytest.mark.no_db
def test_an_export_read_slowly_arrives_whole(short_idle, monkeypatch):
    url, auditor = five_events_in_batches_of_two(short_idle, monkeypatch)
    answer = short_idle.test_client().get(url, headers=auditor, buffered=False)
    assert answer.status_code == 200
    lines = []
    for chunk in answer.response:
        lines.append(chunk)
        time.sleep(2 * IDLE_MS / 1000)  # a reader slower than the timeout, between lines
    answer.close()

    exported = [json.loads(line) for line in b"".join(
        c if isinstance(c, bytes) else c.encode() for c in lines).splitlines()]
    assert [e["reason"] for e in exported if e["reason"].startswith("event-")] == [
        f"event-{n}" for n in range(5)]


@pytest.mark.no_db
def test_an_export_the_database_cuts_short_ends_without_its_last_chunk(
        short_idle, monkeypatch, caplog):
    """The database goes away after the export's 200 (found by a fault review: gunicorn then
    logged a 39-frame traceback with the driver's message). The error's type and place go to
    the log, and the stream stops as a dropped connection (gunicorn ignores a reset), never as
    a clean end that would pass the cut export off as whole."""
    import logging

    import sqlalchemy as sa

    url, auditor = five_events_in_batches_of_two(short_idle, monkeypatch)
    secret = "Doe, 2025-01-01"
    reads = []
    real_scalars = db.session.scalars

    def scalars_then_gone(*args, **kwargs):
        reads.append(args)
        if len(reads) == 3:  # a later batch: the database is gone
            raise sa.exc.OperationalError("SELECT ...", {}, Exception(f"server closed {secret}"))
        return real_scalars(*args, **kwargs)

    whole = short_idle.test_client().get(url, headers=auditor).get_data().splitlines()
    answer = short_idle.test_client().get(url, headers=auditor, buffered=False)
    assert answer.status_code == 200
    monkeypatch.setattr(db.session, "scalars", scalars_then_gone)
    received = []
    with caplog.at_level(logging.INFO), pytest.raises(ConnectionResetError):
        for chunk in answer.response:
            received.append(chunk)
    answer.close()

    # What came before the cut, whole lines, and not all of it.
    assert 0 < len(received) < len(whole)
    assert all(json.loads(line) for line in received)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("export cut short: OperationalError (request ")
    assert secret not in caplog.text
