"""Sealing on PostgreSQL: committed pending events chained in batches (migration 0008).

A request's events commit with its change into `audit_pending`; `seal` moves them into the
chain. Two callers: every reader of the trail seals first (`seal_committed`, waiting for a
sealer at work), so an auditor sees every event committed before the request; and each worker
process seals in the background every `AUDIT_SEAL_INTERVAL_MS`, skipping a turn when another
sealer is at work, so the log stays current for checkpoints and direct readers. On SQLite
events are chained at commit (audit/recorder.py) and there is nothing to seal.
"""

import logging
import os
import threading

import sqlalchemy as sa
from flask import Flask

from audit.chain import ChainCannotGoOn
from audit.models import AuditPending
from core.db import db
from core.outage import Outage

log = logging.getLogger(__name__)

#: Events per batch: about 0.1 ms each, so a batch holds the head for a few hundred ms at most.
SEAL_BATCH = 2000
_SEAL = sa.text("SELECT audit_seal_pending(:batch, :wait)")
#: How many committed events wait to be sealed; -1 when the database refuses writes (a hot
#: standby, a read-only database, role or transaction): nothing can be sealed there, and
#: readers read the chain as sealed where it accepts writes. Asked in the one query that
#: counts, so a reader's seal costs no round trip more.
_WAITING = sa.select(sa.case(
    (sa.or_(sa.func.current_setting("transaction_read_only") == "on",
            sa.func.pg_is_in_recovery()), -1),
    else_=sa.select(sa.func.count()).select_from(AuditPending.__table__).scalar_subquery()))


def _waiting(engine: sa.Engine) -> int:
    """How many committed events wait to be sealed; -1 where the database refuses writes."""
    with engine.connect() as connection:
        return connection.scalar(_WAITING)


def _seal_batch(connection, wait: bool) -> int:
    return connection.execute(_SEAL, {"batch": SEAL_BATCH, "wait": wait}).scalar_one()


def seal(connection, *, wait: bool = True) -> int:
    """Chain every committed pending event in the connection's transaction; how many.

    `wait`: queue behind a sealer at work (readers), rather than leave the events to it.
    """
    if connection.dialect.name != "postgresql":
        return 0
    sealed = 0
    while True:
        batch = _seal_batch(connection, wait)
        sealed += batch
        if batch < SEAL_BATCH:
            return sealed


def seal_batches(engine: sa.Engine, *, wait: bool = True, most: int | None = None) -> int:
    """Chain committed pending events, each batch in a transaction of its own, so the head
    is held one batch at a time however long the backlog; how many.

    Until none waits, or once `most` are sealed: a reader seals what waited when it came,
    not what keeps arriving while it seals.
    """
    if engine.dialect.name != "postgresql":
        return 0
    sealed = 0
    while most is None or sealed < most:
        with engine.begin() as connection:
            batch = _seal_batch(connection, wait)
        sealed += batch
        if batch < SEAL_BATCH:
            break
    return sealed


#: The keys an event takes in the chain: its seq, its id, and its families' listing.
_CHAIN_KEYS = frozenset({"pk_audit_events", "uq_audit_events_id", "pk_audit_listed_families"})
_UNIQUE_VIOLATION = "23505"


def _in_the_way(error: sa.exc.IntegrityError | sa.exc.DataError) -> str:
    """What stops the seal: a row holding a chain key, or else what refused a waiting event,
    named as the database named it, without saying whose fault it is."""
    constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
    if getattr(error.orig, "sqlstate", None) == _UNIQUE_VIOLATION and constraint in _CHAIN_KEYS:
        return f"a row written past the service already holds its key {constraint}"
    return (f"a waiting event is refused ({type(error.orig).__name__}"
            + (f" on {constraint})" if constraint else ")"))


def seal_committed(session=None, *, in_transaction: bool = False) -> int:
    """Seal what waits, before reading the trail or checkpointing it; how many (none on a
    database that refuses writes).

    By default outside the caller's transaction, a batch at a time: the head is not held
    through the caller's request (an export may stream for minutes, a verification run for
    seconds). `in_transaction`, for a short reader (a page, one event): a backlog of at most
    one batch is sealed in the caller's own transaction, which then holds the head until it
    ends. It commits once, so it waits for one flush to disk instead of two; other readers
    queue behind it for those milliseconds, and background sealers skip their turn. A larger
    backlog is sealed outside all the same.

    Raises ChainCannotGoOn when a row written past the service (by whoever could write to
    the database) stops the seal, and logs it: a reader then goes on with the chain as it
    stands (auditors need to read the trail around such a row most of all), verification
    says the chain cannot go on, and a checkpoint is not made.
    """
    session = session or db.session
    bind = session.get_bind()
    try:
        if isinstance(bind, sa.Connection):  # a session inside an outer transaction (the tests)
            with session.begin_nested():
                return seal(session.connection())
        if bind.dialect.name != "postgresql":
            return 0
        if in_transaction:
            connection = session.connection()
            waiting = connection.scalar(_WAITING)
            if waiting <= SEAL_BATCH:
                if waiting <= 0:
                    return 0
                # In a savepoint (begun as the session hands the connection out): a failed
                # seal leaves the caller's transaction as it was.
                with session.begin_nested():
                    return _seal_batch(session.connection(), wait=True)
        else:
            waiting = _waiting(bind)
        return seal_batches(bind, most=waiting) if waiting > 0 else 0
    except (sa.exc.IntegrityError, sa.exc.DataError) as error:
        why = _in_the_way(error)
        log.error("the audit chain cannot take the events waiting: %s; verify the trail "
                  "(flask audit verify)", why)
        raise ChainCannotGoOn(why) from None


class _Background:
    """One daemon thread per process sealing on a schedule; started by the process's first
    request, so a server that forks its workers starts one in each."""

    def __init__(self, app: Flask, interval: float):
        self.app, self.interval = app, interval
        self.pid = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def ensure_started(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            threading.Thread(target=self._run, name="audit-sealer", daemon=True).start()

    def _run(self) -> None:
        # Logged once per outage (and once a minute), not five times a second.
        outage = Outage(log, failing="background sealing failing (%s) for %.0f s; retrying "
                                     f"every {self.interval:.2f} s",
                        recovered="background sealing works again after %.0f s")
        while not self.stopped.wait(self.interval):
            try:
                with self.app.app_context():
                    worked = self._turn()
            except Exception as error:  # the next turn, or any reader, seals what is left
                outage.failed(error)
            else:
                if worked:
                    outage.answered()

    @staticmethod
    def _turn() -> bool:
        """Seal what waits; whether the turn shows sealing works (it sealed, or nothing
        waited). A turn that sealed nothing while events waited proves nothing (another
        sealer held the head): counted as working, the log would flap every turn. A database
        that refuses writes (a standby) is not asked to seal: each turn would meet its
        refusal, and let a connection go for it."""
        waiting = _waiting(db.engine)
        if waiting <= 0:
            return waiting == 0
        return seal_batches(db.engine, wait=False) > 0


def init_app(app: Flask) -> None:
    """Seal in the background of each serving process on PostgreSQL, every
    `AUDIT_SEAL_INTERVAL_MS` (0: readers alone seal)."""
    interval = app.config["AUDIT_SEAL_INTERVAL_MS"]
    if not interval or not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    background = _Background(app, interval / 1000)
    app.extensions["audit_sealer"] = background
    app.before_request(background.ensure_started)
