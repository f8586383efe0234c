"""Helpers for forcing interleavings on PostgreSQL with real connections and held row locks
(no sleeps as synchronisation: a gate connection holds a row, and the tests wait until the
database itself reports a backend blocked behind it)."""

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from core.db import db
from referrals.models import Referral


def skip_on_sqlite(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the requests never overlap")


class Gate:
    """A connection of its own holding a referral's row (as another request moving it would)
    until `open()`."""

    def __init__(self, app, referral_id):
        with app.app_context():
            self.engine = db.engine
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.pid = self.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        self.connection.execute(sa.select(Referral.id)
                                .where(Referral.id == uuid.UUID(str(referral_id)))
                                .with_for_update())

    def wait_until_blocked(self, n: int, timeout: float = 15.0) -> None:
        wait_until_blocked(self.engine, n, timeout)

    def open(self) -> None:
        if self.transaction.is_active:
            self.transaction.commit()
        self.connection.close()


def blocked(engine) -> int:
    """How many backends of this database wait for a lock."""
    with engine.connect() as look:
        return look.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND cardinality(pg_blocking_pids(pid)) > 0")).scalar_one()


def wait_until_blocked(engine, n: int, timeout: float = 15.0) -> None:
    """Poll the database (a condition, not a guess at timing) until `n` backends wait for
    a lock."""
    deadline = time.monotonic() + timeout
    while blocked(engine) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {n} backends ever waited for a lock")
        time.sleep(0.02)


def in_thread(target, answers: dict, name: str) -> threading.Thread:
    def run():
        answers[name] = target()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def ordered(a: str, b: str) -> tuple[str, str]:
    """Two referral ids, lowest first (a revocation locks a family's referrals by id)."""
    return tuple(sorted((a, b), key=uuid.UUID))


def expired_pair(served):
    """The clinic's family and two referrals to the provider, sent and accepted three days
    ago under a consent (clinic and provider, everything) that expired two days ago, and
    looked at by nobody since: both still `accepted`. Returns (net, low id, high id); the
    higher id changed last, so a list page comes to it first."""
    from datetime import timedelta

    from core import time as clock
    from tests.conftest import Factory
    from tests.referrals.conftest import FULL, move, network, send

    real = clock.now()
    client = served.test_client()
    try:
        clock.freeze(real - timedelta(days=3))
        make = Factory(served)
        net = network(make)
        make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                     effective_at=clock.now() - timedelta(days=1), expires_in_days=2)
        low, high = ordered(send(client, net).json["id"], send(client, net).json["id"])
        for n, rid in enumerate((low, high)):
            clock.freeze(real - timedelta(days=3) + timedelta(seconds=n + 1))
            seen = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider)
            assert move(client, rid, net.as_provider, seen.headers["ETag"],
                        status="accepted").status_code == 200
    finally:
        clock.freeze(None)
    return net, low, high


def run_until_done_or_blocked(app, action, *, blocked_backends: int, timeout: float = 15.0):
    """Run `action()` in a thread of its own; return (thread, answers) once it finished, or
    once `blocked_backends` backends wait for a lock (it waits too, say for a revocation a
    fixed service makes it wait for). `answers["value"]` holds its result when it ends."""
    with app.app_context():
        engine = db.engine
    done, answers = threading.Event(), {}

    def run():
        try:
            answers["value"] = action()
        finally:
            done.set()

    thread = threading.Thread(target=run, name="action")
    thread.start()
    deadline = time.monotonic() + timeout
    while not done.is_set() and blocked(engine) < blocked_backends:
        if time.monotonic() > deadline:
            raise AssertionError("the action neither ended nor waited for a lock")
        time.sleep(0.02)
    return thread, answers
