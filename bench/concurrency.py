"""Many writers at once: processes appending through the service's recorder keep one chain.

Run by bench/run (`--only chain_concurrency`) against the bench database, the way
tests/audit/test_concurrency.py does on a test database: each process records an event and
commits it into `audit_pending`, while the service's workers seal in the background; the time
runs until every event is chained (a last seal once the writers are done).

    python bench/concurrency.py [--processes 8] [--events 500]

Prints one JSON document (elapsed seconds, events/s, chain checks); progress goes to stderr.
"""

import argparse
import multiprocessing
import time

from common import emit, log

JOIN_TIMEOUT = 300


def append(worker: int, events: int, ready, start, errors) -> None:
    """One writer: record and commit `events` events, each in its own transaction."""
    import sqlalchemy as sa

    import audit
    from app import create_app
    from core.db import db

    try:
        app = create_app()
        with app.app_context():
            db.session.execute(sa.text("SELECT 1"))  # connect before the start, not in the timing
            db.session.rollback()
            ready.release()
            start.wait()
            for n in range(events):
                audit.record(
                    action="create",
                    outcome="permit",
                    reason=f"bench-w{worker}-{n}",
                    resource_type="audit_event",
                )
                db.session.commit()
            db.engine.dispose()
    except Exception as error:  # reported by the parent
        errors.put(f"worker {worker}: {error!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--events", type=int, default=500, help="events per process")
    args = p.parse_args()

    import sqlalchemy as sa

    from app import create_app
    from audit.chain import chain_head, verify
    from audit.models import AuditEvent
    from audit.sealer import seal
    from core.db import db

    app = create_app()
    with app.app_context():
        before = chain_head(db.session).seq
        db.session.rollback()

    # spawn: each writer starts clean, with its own app, engine and connections.
    context = multiprocessing.get_context("spawn")
    ready, start, errors = context.Semaphore(0), context.Event(), context.Queue()
    workers = [
        context.Process(target=append, args=(w, args.events, ready, start, errors))
        for w in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for _ in workers:
        if not ready.acquire(timeout=max(1, deadline - time.monotonic())):
            break
    log(f"{args.processes} writers ready; appending {args.events} events each")
    started = time.perf_counter()
    start.set()
    for worker in workers:
        worker.join(timeout=max(1, deadline - time.monotonic()))
    with app.app_context(), db.engine.begin() as connection:
        seal(connection)  # what committed after the background sealers' last turn
    elapsed = time.perf_counter() - started
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            errors.put(f"a writer was still running after {JOIN_TIMEOUT}s")

    problems = []
    while not errors.empty():
        problems.append(errors.get())
    problems += [f"a writer exited with {w.exitcode}" for w in workers if w.exitcode != 0]

    expected = args.processes * args.events
    with app.app_context():
        new = db.session.execute(
            sa.select(
                sa.func.count(), sa.func.min(AuditEvent.seq), sa.func.max(AuditEvent.seq)
            ).where(AuditEvent.seq > before)
        ).one()
        ours = db.session.scalar(
            sa.select(sa.func.count()).where(
                AuditEvent.seq > before, AuditEvent.reason.like("bench-w%")
            )
        )
        verify_started = time.perf_counter()
        verdict = verify(db.session)
        verify_seconds = time.perf_counter() - verify_started
        db.session.rollback()
        db.engine.dispose()

    count, low, high = new
    gapless = (
        count == expected
        and ours == expected
        and (low, high)
        == (
            before + 1,
            before + expected,
        )
    )
    if not gapless:
        problems.append(
            f"expected events {before + 1}..{before + expected} ({expected}, all ours); found "
            f"{count} from {low} to {high}, {ours} of them ours"
        )
    if not verdict.valid:
        problems.append(f"the chain does not verify: {verdict.as_dict()}")
    rate = count / elapsed if elapsed else 0.0
    log(f"{count} events in {elapsed:.2f}s ({rate:.0f}/s); chain valid: {verdict.valid}")
    emit(
        {
            "figures": [
                {
                    "measure": f"{args.processes} processes x {args.events} appends",
                    "figure": f"{elapsed:.2f} s, {rate:.0f} events/s",
                    "target": None,
                    "pass": None,
                },
                {
                    "measure": f"{expected} new events gapless, chain verifies",
                    "figure": f"{count} new, valid={verdict.valid}",
                    "target": "gapless and valid",
                    "pass": gapless and verdict.valid,
                },
            ],
            "errors": problems,
            "details": {
                "processes": args.processes,
                "events_each": args.events,
                "seconds": elapsed,
                "events_per_second": rate,
                "seq_range": [low, high],
                "verify": verdict.as_dict(),
                "verify_seconds": verify_seconds,
            },
        }
    )


if __name__ == "__main__":
    main()
