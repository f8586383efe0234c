"""Two staff move the same referral at once on the ETag they both read (PostgreSQL)."""

import pytest

from tests.conftest import Factory
from tests.race_support import in_thread, run_until_done_or_blocked, skip_on_sqlite
from tests.referrals.conftest import FULL, network, send
from tests.referrals.test_looks_that_waited import Paused


@pytest.mark.no_db
def test_two_moves_on_one_etag_one_wins_the_other_412(served, monkeypatch):
    skip_on_sqlite(served)
    make = Factory(served)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    client = served.test_client()
    sent = send(client, net)
    rid, etag = sent.json["id"], sent.headers["ETag"]
    paused = Paused(monkeypatch, "transition", "first")
    answers = {}
    url = f"/api/v1/referrals/{rid}/transitions"
    first = in_thread(lambda: served.test_client().post(
        url, json={"status": "accepted"}, headers={**net.as_provider, "If-Match": etag}),
        answers, "first")
    assert paused.reached.wait(20)
    second, got = run_until_done_or_blocked(served, lambda: served.test_client().post(
        url, json={"status": "cancelled", "reason": "other"},
        headers={**net.as_clinic, "If-Match": etag}), blocked_backends=1)
    paused.release()
    first.join(30)
    second.join(30)
    assert answers["first"].status_code == 200, answers["first"].json
    assert got["value"].status_code == 412, got["value"].json
    now = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json
    assert now["status"] == "accepted"
