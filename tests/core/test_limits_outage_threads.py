"""The rate-limit outage state is one object shared by every request thread of a worker: when
the counters answer again, every thread in flight calls `answered()` at once, and one could
clear `since` between another's check and its use (a TypeError, a 500 on a request the
counters served; found by a review). The interleaving is forced: the other thread's
`answered()` runs, whole, inside this thread's call to `time.monotonic()`."""

import logging
import time
import types

from core import limits
from core import outage as outage_module
from tests.conftest import bearer


def _other_thread_answers_within(outage, monkeypatch) -> None:
    done = []

    def monotonic():
        if not done:
            done.append(True)
            outage.answered()  # another request thread, start to end
        return time.monotonic()

    monkeypatch.setattr(outage_module, "time", types.SimpleNamespace(monotonic=monotonic))


def _fresh() -> outage_module.Outage:
    """An outage state of the rate-limit counters' own kind, logging as they do."""
    used = limits._outage
    return outage_module.Outage(limits.log, failing=used.failing, recovered=used.recovered)


def test_two_threads_seeing_the_counters_answer_again_log_it_once_and_neither_fails(
        monkeypatch, caplog):
    outage = _fresh()
    outage.failed(ConnectionError("redis down"))
    _other_thread_answers_within(outage, monkeypatch)

    with caplog.at_level(logging.WARNING, logger="core.limits"):
        caplog.clear()
        outage.answered()

    assert [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("rate-limit counters reachable again")] != []
    assert outage.since is None


def test_a_request_served_as_the_outage_ends_is_not_a_500(client, make, monkeypatch):
    token = make.token()
    outage = _fresh()
    outage.failed(ConnectionError("redis down"))
    monkeypatch.setattr(limits, "_outage", outage)
    _other_thread_answers_within(outage, monkeypatch)

    response = client.get("/api/v1/me", headers=bearer(token))

    assert response.status_code == 200, response.get_data(as_text=True)
