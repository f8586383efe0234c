"""Served on SQLite (README's `./scripts/serve`), an auditor's long read of the trail does not
stop the other requests of the service.

SQLite has one writer, and a request's transaction takes its lock from the start (`BEGIN
IMMEDIATE`, core/db.py). The auditors' long reads (an export, for as long as its client takes
to read the stream; a verification, for as long as the whole log takes to recompute) only read:
they begin deferred, readers beside the writer. Measured with gunicorn before they did: an
export whose client stopped reading made every other request 503 after 10 s, for as long as
the client kept the connection; a verification of 150,000 events took 15.7 s, and a request
sent meanwhile got 503.
"""

import threading
import time
from datetime import timedelta

import pytest

from core import time as clock
from core.db import db
from tests.conftest import Factory, bearer

pytestmark = pytest.mark.no_db


def _me_meanwhile(served, token) -> tuple[int, float]:
    """GET /api/v1/me from a thread of its own; its status and how long it took."""
    answer = {}

    def ask():
        started = time.monotonic()
        response = served.test_client().get("/api/v1/me", headers=bearer(token))
        answer["me"] = (response.status_code, time.monotonic() - started)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join(60)
    return answer["me"]


def _tokens(served):
    make = Factory(served)
    auditor = make.organization(name="Network Privacy Office", type="community_other")
    provider = make.organization(name="Riverbend Infant Mental Health")
    return (make.token(auditor, scopes=("audit:read",)),
            make.token(provider, scopes=("directory:read",)))


def test_an_export_being_streamed_does_not_stop_the_other_requests(served):
    """An export (`GET /api/v1/audit/export`, streamed NDJSON) read slowly by its client, or
    not read at all once its first bytes came, does not make every other caller wait."""
    auditor, provider = _tokens(served)
    client = served.test_client()
    # something on the trail for the export to stream (sealed by the export on PostgreSQL)
    assert client.get("/api/v1/audit/events?limit=1", headers=bearer(auditor)).status_code == 200
    day = timedelta(days=1)
    since, until = (f"{(clock.now() + d):%Y-%m-%dT%H:%M:%SZ}" for d in (-day, day))
    export = client.get(f"/api/v1/audit/export?since={since}&until={until}",
                        headers=bearer(auditor), buffered=False)
    assert export.status_code == 200
    lines = iter(export.response)
    assert next(lines)  # the client has the first line and reads on later
    try:
        status, took = _me_meanwhile(served, provider)
    finally:
        export.close()
        db.session.rollback()
    assert (status, took < 5) == (200, True), f"/api/v1/me answered {status} after {took:.1f} s"


def test_a_verification_under_way_does_not_stop_the_other_requests(served, monkeypatch):
    """`GET /api/v1/audit/verify` recomputes the whole log, for longer as the log grows; the
    recomputation is held open here (a stand-in for a long log) while `/api/v1/me` is asked:
    it answers at once."""
    import audit.service

    auditor, provider = _tokens(served)
    real_verify, inside, release = audit.service.verify, threading.Event(), threading.Event()

    def long_verify(session, *args, **kwargs):
        inside.set()
        release.wait(30)
        return real_verify(session, *args, **kwargs)

    monkeypatch.setattr(audit.service, "verify", long_verify)
    verdict = {}

    def verify():
        verdict["answer"] = served.test_client().get("/api/v1/audit/verify",
                                                     headers=bearer(auditor))

    verifier = threading.Thread(target=verify)
    verifier.start()
    try:
        assert inside.wait(10)
        status, took = _me_meanwhile(served, provider)
    finally:
        release.set()
        verifier.join(30)
    assert verdict["answer"].status_code == 200
    assert verdict["answer"].json["valid"] is True
    assert (status, took < 5) == (200, True), f"/api/v1/me answered {status} after {took:.1f} s"


def test_a_request_that_waited_too_long_for_sqlite_s_lock_says_so(served, caplog):
    """A request that gave up waiting for SQLite's one writer (SQLITE_BUSY after
    busy_timeout) met concurrent changes, as a PostgreSQL lock timeout does: 503 with
    `Retry-After: 1` and a warning in the log, not "the database is unreachable" and an
    error that sends the operator looking for an outage."""
    import sqlite3

    if not served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite's lock")
    _, provider = _tokens(served)
    holder = sqlite3.connect(db.engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another request's transaction, held past busy_timeout
    try:
        response = served.test_client().get("/api/v1/me", headers=bearer(provider))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503
    assert "unreachable" not in response.json["detail"], response.json["detail"]
    assert response.headers["Retry-After"] == "1"
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
