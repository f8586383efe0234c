"""Many writers at once: 8 processes appending 500 events each keep the chain linear and gapless."""

import multiprocessing

import flask_migrate
import pytest
import sqlalchemy as sa

PROCESSES = 8
EVENTS_EACH = 500


def _append(url: str, worker: int, start, errors) -> None:
    import audit
    from core.db import db
    from tests.conftest import make_app

    app = make_app(url)
    start.wait()
    try:
        with app.app_context():
            for n in range(EVENTS_EACH):
                audit.record(action="create", outcome="permit", reason=f"w{worker}-{n}",
                             resource_type="test")
                db.session.commit()
            db.engine.dispose()
    except Exception as error:  # reported to the parent, which fails the test
        errors.put(f"worker {worker}: {error!r}")




@pytest.mark.no_db
def test_eight_processes_appending_at_once_keep_one_gapless_chain(empty_database):
    from audit.chain import verify
    from audit.models import AuditEvent
    from core.db import db
    from tests.conftest import make_app

    app = make_app(empty_database)
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()

    context = multiprocessing.get_context("spawn")
    start, errors = context.Event(), context.Queue()
    workers = [context.Process(target=_append, args=(empty_database, w, start, errors))
               for w in range(PROCESSES)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    assert errors.empty(), errors.get()

    with app.app_context():
        seqs = list(db.session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))
        assert seqs == list(range(1, PROCESSES * EVENTS_EACH + 1))
        verdict = verify(db.session)
        assert verdict.valid, verdict
        assert verdict.checked == PROCESSES * EVENTS_EACH
        db.session.rollback()
        db.engine.dispose()
