"""The background sealer's log through an outage (it runs on PostgreSQL; its turns are
played here, on either database)."""

import logging

from audit import sealer


def test_background_sealing_logs_an_outage_once_and_its_end_only_once_it_seals(
        app, monkeypatch, caplog):
    """A turn that seals nothing (another sealer held the head) is no proof that sealing
    works again: the log said so, then failed again, every 200 ms (found by a fault review
    with a short statement timeout and a backlog)."""
    turns = iter([RuntimeError("timeout"), 0, RuntimeError("timeout"), 0, 0, 7, 0])
    background = sealer._Background(app, 0.001)

    def seal_batches(engine, *, wait=True, most=None):
        turn = next(turns, None)
        if turn is None:
            background.stopped.set()
            return 0
        if isinstance(turn, Exception):
            raise turn
        return turn

    monkeypatch.setattr(sealer, "seal_batches", seal_batches)
    with caplog.at_level(logging.WARNING, logger="audit.sealer"):
        background._run()

    assert [record.getMessage() for record in caplog.records] == [
        "background sealing failed: RuntimeError; retrying every 0.00 s",
        "background sealing works again"]
