"""Many writers at once: 8 processes appending 500 events each keep the chain linear and gapless,
while two sealers chain them as they commit (PostgreSQL), one waiting its turn, one skipping it."""

import multiprocessing

import flask_migrate
import pytest
import sqlalchemy as sa

PROCESSES = 8
EVENTS_EACH = 500
#: Retries of a commit SQLite refused as busy, as a client retries a 503.
_RETRIES = 5


def _append(url: str, worker: int, start, errors) -> None:
    import audit
    from core.db import db
    from tests.conftest import make_app

    app = make_app(url)
    start.wait()
    try:
        with app.app_context():
            for n in range(EVENTS_EACH):
                for attempt in range(_RETRIES + 1):
                    try:
                        audit.record(action="create", outcome="permit",
                                     reason=f"w{worker}-{n}", resource_type="audit_event")
                        db.session.commit()
                        break
                    except sa.exc.OperationalError as error:
                        # SQLite's busy handler can starve one writer past busy_timeout on a
                        # loaded machine: the service answers 503 Retry-After and the client
                        # retries, as here. Whatever failed wrote nothing (checked below).
                        db.session.rollback()
                        busy = getattr(error.orig, "sqlite_errorname", "").startswith(
                            ("SQLITE_BUSY", "SQLITE_LOCKED"))
                        if not busy or attempt == _RETRIES:
                            raise
            db.engine.dispose()
    except Exception as error:  # reported to the parent, which fails the test
        errors.put(f"worker {worker}: {error!r}")


def _seal(url: str, wait: bool, start, done, errors, tallies) -> None:
    from audit.sealer import seal
    from core.db import db
    from tests.conftest import make_app

    app = make_app(url)
    start.wait()
    try:
        sealed = 0
        with app.app_context():
            while not done.is_set():
                with db.engine.begin() as connection:
                    sealed += seal(connection, wait=wait)
            db.engine.dispose()
        tallies.put(sealed)
    except Exception as error:
        errors.put(f"sealer (wait={wait}): {error!r}")



@pytest.mark.no_db
def test_eight_processes_appending_at_once_keep_one_gapless_chain(empty_database):
    from audit.chain import verify
    from audit.models import AuditEvent
    from audit.sealer import seal
    from core.db import db
    from tests.conftest import make_app

    app = make_app(empty_database)
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()

    context = multiprocessing.get_context("spawn")
    start, done, errors, tallies = (context.Event(), context.Event(), context.Queue(),
                                    context.Queue())
    workers = [context.Process(target=_append, args=(empty_database, w, start, errors))
               for w in range(PROCESSES)]
    postgresql = empty_database.startswith("postgresql")
    # SQLite chains at each commit: a sealer there seals nothing, and its empty write
    # transactions, back to back, only starved the writers' lock on a loaded machine.
    sealers = [context.Process(target=_seal, args=(empty_database, wait, start, done, errors,
                                                       tallies))
               for wait in ((True, False) if postgresql else ())]
    for process in workers + sealers:
        process.start()
    start.set()
    for worker in workers:
        worker.join(timeout=300)
    done.set()
    for process in sealers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers + sealers] == [0] * (PROCESSES + len(sealers))
    assert errors.empty(), errors.get()
    if postgresql:  # the sealers chained while the writers wrote
        assert tallies.get(timeout=10) + tallies.get(timeout=10) > 0

    with app.app_context():
        seal(db.session.connection())  # what committed after the sealers' last turn
        seqs = list(db.session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))
        assert seqs == list(range(1, PROCESSES * EVENTS_EACH + 1))
        verdict = verify(db.session)
        assert verdict.valid, verdict
        assert verdict.checked == PROCESSES * EVENTS_EACH
        db.session.rollback()
        db.engine.dispose()
