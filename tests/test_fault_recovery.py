"""Faults from an SRE review under load: the service recovers by itself once the fault is
gone, without a restart, answers each fault 503 as the README says, and says so in the log."""

import pytest
import sqlalchemy as sa

from core.db import db
from tests.conftest import Factory, assert_problem, basic, bearer, served_app

FORM = {"grant_type": "client_credentials"}


@pytest.fixture
def on_postgres(empty_database):
    if empty_database.startswith("sqlite"):
        pytest.skip("PostgreSQL only")
    with served_app(empty_database) as served:
        yield served, empty_database


def _server(url: str) -> sa.Engine:
    """An AUTOCOMMIT engine on the server's suite database (not the one under test)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def _terminate_backends(server: sa.Engine, name: str) -> None:
    """What a restart, a failover or a connection reaper does: the service's connections go,
    and the pool opens new ones (pool_pre_ping)."""
    with server.connect() as connection:
        connection.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})


@pytest.mark.no_db
@pytest.mark.parametrize("probed", [True, False], ids=["readyz-probed", "unprobed"])
def test_writes_work_again_once_the_database_accepts_writes_again(app, on_postgres, probed):
    """A database made read-only for a while (`ALTER DATABASE ... SET
    default_transaction_read_only = on`, as an operator does when the disk fills), then
    writable again: the connections the pool opened meanwhile kept the setting for their
    whole life, and every audited request answered 503 until the workers were restarted,
    while /readyz said 200 (found by a fault review). /readyz now says 503 meanwhile, and lets
    go of the connection it used; unprobed, only the `handle_error` hook (core/db.py) lets go
    of the pooled read-only connections."""
    served, url = on_postgres
    make = Factory(served)
    organization = make.organization(name="Clinic", type="hospital")
    oauth_client, secret = make.client(organization, scopes=("directory:read",))
    client = served.test_client()

    def token_status() -> int:
        return client.post("/oauth/token", data=FORM,
                           headers=basic(oauth_client.client_id, secret)).status_code

    assert token_status() == 200
    name = sa.engine.make_url(url).database
    server = _server(app.config["SQLALCHEMY_DATABASE_URI"])

    def read_only(on: bool) -> None:
        with server.connect() as connection:
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" SET default_transaction_read_only = on' if on else
                f'ALTER DATABASE "{name}" RESET default_transaction_read_only')

    try:
        read_only(True)
        _terminate_backends(server, name)
        assert token_status() == 503
        if probed:
            assert_problem(client.get("/readyz"), 503, "service-unavailable")

        read_only(False)  # the disk has room again
        answers = [token_status() for _ in range(5)]
        assert client.get("/readyz").status_code == 200
        assert answers[-1] == 200, answers
    finally:
        read_only(False)
        with served.app_context():
            db.engine.dispose()
        server.dispose()


@pytest.mark.no_db
def test_a_sealer_turn_on_a_database_that_refuses_writes_keeps_the_other_connections(
        app, on_postgres):
    """The 25006 hook lets go of the connection that met the refusal, not of the whole pool
    (SQLAlchemy's `invalidate_pool_on_disconnect`; found by a review): on a database that
    refuses writes with an event pending, a sealer's turn meets 25006, and dropping every
    pooled connection each time would be a reconnect storm against a database in trouble.
    Two idle pooled connections, one sealer turn: the one it did not use is still there."""
    import audit
    from audit.sealer import seal_batches

    served, url = on_postgres
    name = sa.engine.make_url(url).database
    audit.record(action="read", outcome="permit", reason="pending", resource_type="family")
    db.session.commit()  # pending: nothing seals it here (AUDIT_SEAL_INTERVAL_MS 0)
    db.session.remove()
    server = _server(app.config["SQLALCHEMY_DATABASE_URI"])
    pid = sa.text("SELECT pg_backend_pid()")
    try:
        with server.connect() as connection:
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        _terminate_backends(server, name)
        db.engine.dispose()
        with db.engine.connect() as first, db.engine.connect() as second:
            pooled = {first.scalar(pid), second.scalar(pid)}

        with pytest.raises(sa.exc.DBAPIError):  # 25006, as every turn meets it
            seal_batches(db.engine, wait=False)

        with db.engine.connect() as after:
            assert after.scalar(pid) in pooled, "the sealer's turn dropped the whole pool"
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        db.engine.dispose()
        server.dispose()


@pytest.mark.no_db
def test_a_request_that_waits_past_the_pool_timeout_is_503_not_500(empty_database):
    """Every connection of the worker's pool (5 + 10 overflow by default) is held by requests
    stuck on a slow or paused database (or GUNICORN_THREADS is above the pool's size): the
    next request waits `pool_timeout` (30 s) for a connection, and SQLAlchemy raises
    `sqlalchemy.exc.TimeoutError`, which is not a DBAPIError, so `core/errors.py` answers it
    as an unhandled error: 500 `internal-error` without Retry-After. Observed under load
    (WEB_CONCURRENCY=1, GUNICORN_THREADS=24, PostgreSQL paused 38 s): 8 answers 500,
    "unhandled error: TimeoutError". Expected: 503 `service-unavailable` with Retry-After,
    as for every other outage. Here the pool is one connection, held by the test."""
    if empty_database.startswith("sqlite"):
        pytest.skip("PostgreSQL only")
    with served_app(empty_database, SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": True, "hide_parameters": True, "isolation_level": "READ COMMITTED",
            "pool_size": 1, "max_overflow": 0, "pool_timeout": 1}) as served:
        make = Factory(served)
        token = make.token(make.organization(name="Clinic", type="hospital"))
        client = served.test_client()
        db.session.remove()
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
        held = db.engine.connect()  # the one connection, as a stuck request holds it
        try:
            response = client.get("/api/v1/me", headers=bearer(token))
        finally:
            held.close()
        assert_problem(response, 503, "service-unavailable")
        assert response.headers.get("Retry-After")


def test_an_unreachable_redis_is_logged_not_only_answered_503(app, make, caplog, monkeypatch):
    """With REDIS_URL set and Redis down, every counted request answers 503 (as it should),
    but nothing reaches the log: under load 3,152 answers 503 in 12 s with not one log line,
    and /readyz stays 200, so an operator sees an outage of the whole API nowhere but in the
    access log's status codes. Expected: a WARNING (at least once per outage) naming the
    rate-limit storage, as the database's outages and the sealer's are logged. Here Redis is
    a port where nothing listens (the suite's SQLite or PostgreSQL database is unaffected)."""
    import logging
    import socket

    from tests.conftest import make_app

    with socket.socket() as probe:  # a port with nothing behind it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from core import limits

    # A fresh outage state: no earlier test's outage under way, none left for a later one.
    monkeypatch.setattr(limits._outage, "since", None)
    monkeypatch.setattr(limits._outage, "said", None)
    limited = make_app(app.config["SQLALCHEMY_DATABASE_URI"],
                       REDIS_URL=f"redis://127.0.0.1:{port}/0")
    token = make.token()
    with caplog.at_level(logging.INFO):
        answers = [limited.test_client().get("/api/v1/me", headers=bearer(token))
                   for _ in range(3)]
    for response in answers:
        assert_problem(response, 503, "service-unavailable")
        assert response.headers.get("Retry-After")
    warned = [record.getMessage() for record in caplog.records
              if record.levelno >= logging.WARNING]
    # Once when the outage begins (then once a minute), not once for each refused request.
    assert len(warned) == 1, warned
    assert warned[0].startswith("rate-limit counters unreachable (")

    caplog.clear()
    limits._outage.answered()  # a later request the counters answer
    assert [record.getMessage() for record in caplog.records] == [
        "rate-limit counters reachable again after 0 s"]


def test_a_database_that_refuses_the_service_s_role_is_503_not_500(app, caplog):
    """A grant taken from the service's role (EXECUTE on the audit sealer's function, under
    load: every auditor's query and /audit/verify answered 500 with 17 frames in the log).
    The operator's to mend: 503 with Retry-After, as `flask audit verify` exits 3 for it."""
    import logging

    import psycopg

    from tests.conftest import make_app

    fresh = make_app(app.config["SQLALCHEMY_DATABASE_URI"])
    denied = psycopg.errors.InsufficientPrivilege("permission denied for function x")

    @fresh.get("/denied")
    def refuse():
        raise sa.exc.ProgrammingError("SELECT audit_seal_pending(2000, true)", {}, denied)

    try:
        with caplog.at_level(logging.INFO):
            response = fresh.test_client().get("/denied")
        assert_problem(response, 503, "service-unavailable")
        assert response.headers.get("Retry-After")
        logged = [record.getMessage() for record in caplog.records]
        assert logged == ["database refuses the service's role: InsufficientPrivilege"], logged
    finally:
        with fresh.app_context():
            db.engine.dispose()


def _answer_to_a_statement(app, caplog, statement: str):
    """What a fresh app answers, and logs, for a request that sends `statement`."""
    import logging

    from tests.conftest import make_app

    fresh = make_app(app.config["SQLALCHEMY_DATABASE_URI"])

    @fresh.get("/statement")
    def send_it():
        db.session.execute(sa.text(statement))

    try:
        with caplog.at_level(logging.INFO):
            return fresh.test_client().get("/statement"), caplog.text
    finally:
        with fresh.app_context():
            db.engine.dispose()


def test_a_refusal_by_the_service_s_own_integrity_trigger_is_no_outage(app, caplog):
    """The service's triggers RAISE the same SQLSTATE as a missing grant (42501: the trail is
    append-only, a consent never changes). Meeting one is a fault of the code that no retry
    mends: 500, not 503 "retry shortly", nor a log line sending the operator to the grants
    (found by a review). A real trigger's refusal, on PostgreSQL."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL's triggers")

    response, logged = _answer_to_a_statement(app, caplog, "TRUNCATE audit_events")

    assert_problem(response, 500, "internal-error")
    assert "refuses the service's role" not in logged


def test_a_statement_the_database_cannot_read_is_a_fault_not_an_outage(app, caplog):
    """SQLite raises OperationalError for a statement it cannot read, the class it raises
    for an I/O error: the service answered it 503 "the database is unreachable; retry
    shortly", which no retry mends, where PostgreSQL's syntax error (42601) was a 500, and
    the operator commands failed as for any fault of the code. Now one reading
    (core/dberrors.py): 500 on both."""
    response, logged = _answer_to_a_statement(app, caplog, "SELEC 1")

    assert_problem(response, 500, "internal-error")
    assert "database unavailable" not in logged
