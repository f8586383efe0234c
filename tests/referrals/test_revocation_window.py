"""A revocation holds the family, stamps `revoked_at`, then holds every open referral of the
family, one row lock at a time, before it commits. A gate connection holds another referral
of the family (as the expiry sweep can), so the revocation waits inside that window; each
test acts then, opens the gate, and looks at what the service recorded: every look and move
of the family waited for the revocation and decided after it (PostgreSQL).
"""

from datetime import datetime

import pytest

from tests.conftest import Factory
from tests.race_support import (
    Gate,
    in_thread,
    ordered,
    run_until_done_or_blocked,
    skip_on_sqlite,
)
from tests.referrals.conftest import FULL, accepted, move, network


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Window:
    """The clinic's family, one consent (clinic and provider, everything), two accepted
    referrals; the revocation of that consent waits behind the gate on the lower one, and
    `target` is the other one, free to be read and moved."""

    def __init__(self, served):
        skip_on_sqlite(served)
        self.app = served
        self.client = served.test_client()
        self.net = network(Factory(served))
        self.consent_id = str(Factory(served).consent(
            self.net.family, [self.net.clinic, self.net.provider], categories=FULL).id)
        first, first_etag = accepted(self.client, self.net)
        second, second_etag = accepted(self.client, self.net)
        etags = {first: first_etag, second: second_etag}
        self.gated, self.target = ordered(first, second)
        self.target_etag = etags[self.target]
        self.answers = {}
        self.actions = []

    def __enter__(self):
        self.gate = Gate(self.app, self.gated)
        self.revoker = in_thread(lambda: self.app.test_client().post(
            f"/api/v1/consents/{self.consent_id}/revoke", headers=self.net.as_clinic,
            json={"reason": "The family withdrew it."}), self.answers, "revoke")
        self.gate.wait_until_blocked(1)  # revoked_at stamped, the revocation not committed
        return self

    def during(self, action) -> dict:
        """Run `action()` in the window: until it ends, or until it waits for a lock (a
        service that makes it wait for the revocation); its answers once the gate opened."""
        thread, answers = run_until_done_or_blocked(self.app, action, blocked_backends=2)
        self.actions.append(thread)
        return answers

    def __exit__(self, *exc):
        self.gate.open()
        self.revoker.join(30)
        for thread in self.actions:
            thread.join(30)
        return False

    @property
    def revocation(self):
        return self.answers["revoke"]


@pytest.mark.no_db
def test_no_disclosure_is_accounted_after_the_consent_s_revocation_instant(served):
    """What the provider reads while the revocation is under way waits for it: every
    disclosure citing the consent is dated before its `revoked_at`, so the accounting of
    disclosures and the consent record agree."""
    with Window(served) as window:
        net, client = window.net, window.client
        looks = window.during(lambda: [
            served.test_client().get(f"/api/v1/referrals/{window.target}",
                                     headers=net.as_provider),
            served.test_client().get(f"/api/v1/families/{net.family.id}?purpose=referral",
                                     headers=net.as_provider)])
    assert window.revocation.status_code == 200, window.revocation.json
    assert all(look.status_code < 500 for look in looks["value"])
    revoked_at = _instant(window.revocation.json["revoked_at"])
    accounting = client.get(f"/api/v1/families/{net.family.id}/disclosures?limit=200",
                            headers=net.as_clinic).json["items"]
    after = [(item["action"], item["resource"]["type"], item["recorded_at"])
             for item in accounting
             if window.consent_id in item["consent_ids"]
             and _instant(item["recorded_at"]) >= revoked_at]
    assert after == [], f"disclosed under the consent after its revoked_at {revoked_at}"


@pytest.mark.no_db
def test_a_hold_for_the_revocation_is_never_dated_before_the_move_it_follows(served):
    """The provider moves the referral (in_progress) while the revocation is under way: one
    of the two waits for the other, so the revocation's hold is dated after the move, and
    the referrer polling `updated_since` from the last change it saw learns of the hold."""
    with Window(served) as window:
        net, client = window.net, window.client
        moved = window.during(lambda: move(
            served.test_client(), window.target, net.as_provider, window.target_etag,
            status="in_progress", business_status="contact_attempted"))
    assert window.revocation.status_code == 200, window.revocation.json
    assert moved["value"].status_code < 500
    now = client.get(f"/api/v1/referrals/{window.target}", headers=net.as_clinic).json
    assert now["status"] == "on_hold"
    steps = client.get(f"/api/v1/referrals/{window.target}/events",
                       headers=net.as_clinic).json["items"]  # newest first
    # The referrer last saw the referral change at the step before the hold.
    last_seen = steps[1]["occurred_at"]
    polled = client.get("/api/v1/referrals", headers=net.as_clinic,
                        query_string={"direction": "sent", "updated_since": last_seen}).json
    assert window.target in [item["id"] for item in polled["items"]], (
        f"held at {now['updated_at']}, before the move it follows, at {last_seen}: "
        f"{[(x['to_status'], x['occurred_at']) for x in steps]}")


@pytest.mark.no_db
def test_a_receiver_s_hold_made_during_the_revocation_still_becomes_consent_ended(served):
    """The provider puts the referral on hold for its waitlist while the revocation is under
    way: the hold is ordered before or after the revocation, never inside it, and the
    referral ends `consent_ended` with its step and event."""
    with Window(served) as window:
        net, client = window.net, window.client
        held = window.during(lambda: move(
            served.test_client(), window.target, net.as_provider, window.target_etag,
            status="on_hold", reason="waitlist"))
    assert window.revocation.status_code == 200, window.revocation.json
    assert held["value"].status_code < 500
    # Its next accesses, and the sweep, get their chance too.
    client.get(f"/api/v1/referrals/{window.target}", headers=net.as_provider)
    assert served.test_cli_runner().invoke(args=["referrals", "hold-expired"]).exit_code == 0
    # As the provider sees it (it authored its own hold, so its reason is shown to it).
    now = client.get(f"/api/v1/referrals/{window.target}", headers=net.as_provider).json
    steps = client.get(f"/api/v1/referrals/{window.target}/events",
                       headers=net.as_provider).json["items"]
    ended = [step for step in steps if step.get("reason") == "consent_ended"]
    assert len(ended) == 1, (now["status"], now.get("status_reason"),
                             [(step["to_status"], step.get("reason")) for step in steps])


@pytest.mark.no_db
@pytest.mark.parametrize("look", ["list", "read"])
def test_a_look_that_waited_for_a_revocation_discloses_nothing_under_it(
        served, monkeypatch, look):
    """A look at a referral (a read, or a list page) whose referral needs a hold (the consent
    covering its screening expired) while a revocation of the family's other consent is
    under way: the look waits for the revocation and decides after it, so nothing of the
    family passes under the revoked consent."""
    import threading
    from datetime import timedelta

    import audit
    from core import time as clock
    from tests.referrals.conftest import send

    skip_on_sqlite(served)
    client = served.test_client()
    real = clock.now()
    try:  # three days ago, under a consent that covered screening too and expired since
        clock.freeze(real - timedelta(days=3))
        make = Factory(served)
        net = network(make)
        make.consent(net.family, [net.clinic, net.provider],
                     categories=(*FULL, "screening"),
                     effective_at=clock.now() - timedelta(days=1), expires_in_days=2)
        older = send(client, net, shared_categories=[
            "identity", "contact", "referral_reason", "screening"])
        assert older.status_code == 201, older.json
    finally:
        clock.freeze(None)
    revoked = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    newer = send(client, net)
    assert newer.status_code == 201, newer.json

    paused, release = threading.Event(), threading.Event()
    record = audit.record

    def pausing_record(**event):
        # The revocation, its holds done, pauses before its commit (its own event is last).
        if event.get("action") == "revoke" and threading.current_thread().name == "revoke":
            paused.set()
            release.wait(20)
        return record(**event)

    monkeypatch.setattr(audit, "record", pausing_record)
    answers = {}
    revoker = in_thread(lambda: served.test_client().post(
        f"/api/v1/consents/{revoked.id}/revoke", headers=net.as_clinic,
        json={"reason": "The family withdrew it."}), answers, "revoke")
    assert paused.wait(20)
    url = {"list": "/api/v1/referrals?direction=received",
           "read": f"/api/v1/referrals/{older.json['id']}"}[look]
    # The look waits for a row the revocation holds (or, in a service that does not make
    # it wait, ends at once).
    looking, looked = run_until_done_or_blocked(
        served, lambda: served.test_client().get(url, headers=net.as_provider),
        blocked_backends=1)
    release.set()
    revoker.join(30)
    looking.join(30)
    answers["look"] = looked["value"]
    assert answers["revoke"].status_code == 200, answers["revoke"].json
    assert answers["look"].status_code == 200, answers["look"].json
    items = answers["look"].json.get("items", [answers["look"].json])
    shown = {item["id"]: (item["status"], sorted(k for k in item["family"] if k != "id"))
             for item in items}
    # The referral the look waited for, rendered once the revocation had committed.
    waited_for = shown[older.json["id"]]
    assert "child" not in waited_for[1], \
        f"under the revoked consent, after its commit: {waited_for}"
