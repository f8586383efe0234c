"""The background sealer's log through an outage (it runs on PostgreSQL; its turns are
played here, on either database)."""

import logging

import pytest

from audit import sealer

FAILED = "background sealing failing (RuntimeError) for 0 s; retrying every 0.00 s"
WORKS = "background sealing works again after 0 s"


def play(app, monkeypatch, turns) -> tuple[list[str], list[int]]:
    """Run the background sealer through `turns` (events waiting, then sealed; or an error
    raised): what it logged, and how many events waited at each turn it asked to seal."""
    turns = iter(turns)
    background = sealer._Background(app, 0.001)
    asked, turn = [], None

    def waiting(engine):
        nonlocal turn
        turn = next(turns, None)
        if turn is None:  # the play is over: a turn that proves nothing either way
            background.stopped.set()
            return -1
        if isinstance(turn, Exception):
            raise turn
        return turn[0]

    def seal_batches(engine, *, wait=True, most=None):
        asked.append(turn[0])
        return turn[1]

    monkeypatch.setattr(sealer, "_waiting", waiting)
    monkeypatch.setattr(sealer, "seal_batches", seal_batches)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("audit.sealer").addHandler(handler)
    try:
        background._run()
    finally:
        logging.getLogger("audit.sealer").removeHandler(handler)
    return logged, asked


def test_an_outage_is_logged_once_and_its_end_only_once_sealing_works(app, monkeypatch):
    """A turn that seals nothing while events wait (another sealer held the head) is no
    proof that sealing works again: the log said so, then failed again, every 200 ms (found
    by a fault review with a short statement timeout and a backlog)."""
    error = RuntimeError("timeout")
    logged, _ = play(app, monkeypatch, [error, (5, 0), error, (5, 0), (5, 0), (5, 7), (0, 0)])

    assert logged == [FAILED, WORKS]


def test_an_outage_ends_once_nothing_waits(app, monkeypatch):
    """Readers sealed the backlog meanwhile: a quiet turn shows the sealer works, so a
    second outage is logged again (found by a review)."""
    error = RuntimeError("timeout")
    logged, _ = play(app, monkeypatch, [error, (0, 0), error])

    assert logged == [FAILED, WORKS, FAILED]


@pytest.mark.parametrize("standby", [-1])
def test_a_database_that_refuses_writes_is_not_asked_to_seal(app, monkeypatch, standby):
    """On a standby (or a database set read-only) every turn would meet 25006, and let a
    connection go for it, five times a second (found by a review)."""
    logged, asked = play(app, monkeypatch, [(standby, 0), (standby, 0), (3, 3)])

    assert asked == [3]
    assert logged == []
