"""`flask audit verify` exits 1 only when the chain or a checkpoint does not verify: an outage,
even one in the middle of its run, exits 3."""

import threading
import time

import flask_migrate
import pytest
import sqlalchemy as sa

import audit
from core.db import db
from tests.conftest import make_app


def _verify_while_the_head_is_held(empty_database, interrupt):
    served = make_app(empty_database)
    try:
        with served.app_context():
            flask_migrate.upgrade()
            audit.record(action="create", outcome="permit", reason="r", resource_type="audit_event")
            db.session.commit()  # one event waits in audit_pending: verify will seal it
            db.session.remove()
        holder = sa.create_engine(served.config["SQLALCHEMY_DATABASE_URI"])
        result = {}
        with holder.connect() as busy:
            held = busy.begin()
            busy.execute(sa.text("SELECT seq FROM audit_chain_head WHERE id = 1 FOR UPDATE"))

            def run():
                result["r"] = served.test_cli_runner().invoke(args=["audit", "verify"])

            thread = threading.Thread(target=run)
            thread.start()
            interrupt(busy)
            held.rollback()
            thread.join(60)
        holder.dispose()
        return result["r"]
    finally:
        with served.app_context():
            db.engine.dispose()


def _waiting_sealer_pid(url):
    watcher = sa.create_engine(url, isolation_level="AUTOCOMMIT")  # a fresh snapshot a look
    try:
        return _poll(watcher)
    finally:
        watcher.dispose()


def _poll(watcher):
    for _ in range(200):
        with watcher.connect() as look:
            pid = look.scalar(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%audit_seal_pending%' AND pid <> pg_backend_pid()"))
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise AssertionError("the verify never waited for the head")


@pytest.mark.no_db
def test_audit_verify_whose_connection_is_lost_mid_run_exits_as_an_outage(
        app, empty_database):
    """The database restarts (or an administrator ends the session) while `audit verify`
    runs, here while it waits to seal: an outage, not a broken chain (exit 3, one line)."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL: a session another can end")

    def terminate(busy):
        pid = _waiting_sealer_pid(app.config["SQLALCHEMY_DATABASE_URI"])
        administrator = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        try:
            with administrator.connect() as admin:
                admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            administrator.dispose()

    result = _verify_while_the_head_is_held(empty_database, terminate)
    assert result.exit_code != 1, (result.exit_code, repr(result.exception), result.output)
    assert result.exit_code == 3
