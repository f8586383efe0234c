"""Part C's 45-day clock: pauses push it back by the time paused in all, in whole days
rounded up once (issue 5 point 7, DOMAIN.md "Time limits", README "Part C clocks")."""

from datetime import UTC, datetime, timedelta

import pytest

from core import time as clock
from tests.referrals.conftest import FULL, move, network, send

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def consented(make):
    net = network(make)
    net.consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                               effective_at=datetime(2026, 1, 1, tzinfo=UTC),
                               expires_in_days=365)
    return net


def test_short_pauses_within_one_day_push_the_45_days_back_by_one_day_not_one_each(
        client, consented):
    """Five documented pauses of five minutes each, all on one day (a provider logging each
    call attempt as `awaiting_consent`, then back to work), paused the clock 25 minutes: the
    due day moves by one day, not five. A pause of 30 hours after them makes 30 hours and 25
    minutes in all: two days."""
    clock.freeze(START)
    sent = send(client, consented, part_c={"identified_on": START.date().isoformat()})
    rid, etag = sent.json["id"], sent.headers["ETag"]
    etag = move(client, rid, consented.as_provider, etag, status="accepted").headers["ETag"]
    due = START.date() + timedelta(days=45)
    for attempt in range(5):
        clock.freeze(START + timedelta(days=1, minutes=10 * attempt))
        held = move(client, rid, consented.as_provider, etag, status="on_hold",
                    reason="awaiting_consent", note=f"Consent call {attempt + 1}: no answer.")
        assert held.status_code == 200, held.json
        clock.freeze(START + timedelta(days=1, minutes=10 * attempt + 5))
        resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                       status="in_progress", business_status="contact_attempted")
        assert resumed.status_code == 200, resumed.json
        etag = resumed.headers["ETag"]

    assert resumed.json["part_c"]["timeline_due_by"] == (due + timedelta(days=1)).isoformat()

    clock.freeze(START + timedelta(days=2))
    held = move(client, rid, consented.as_provider, etag, status="on_hold",
                reason="family_circumstances", note="The family is away for a funeral.")
    clock.freeze(START + timedelta(days=3, hours=6))
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                   status="in_progress", business_status="engaged")
    assert resumed.json["part_c"]["timeline_due_by"] == (due + timedelta(days=2)).isoformat()


def test_an_unacknowledged_part_c_referral_held_as_its_consent_ended_stays_overdue(
        client, make):
    """45 days after delivery, a Part C referral never acknowledged is on the receiver's
    overdue list. Its consent ending meanwhile put it on hold (`consent_ended`, which pauses
    nothing): the look that held it listed it, the next one did not, and no list ever did
    again, while a received referral held the same way stayed listed."""
    from datetime import UTC, datetime, timedelta

    from core import time as clock
    from tests.referrals.conftest import FULL, move, network, send

    start = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    clock.freeze(start)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                 effective_at=start - timedelta(days=1), expires_in_days=11)
    unacknowledged = send(client, net, part_c={"identified_on": "2026-05-30"}).json["id"]
    received = send(client, net, part_c={"identified_on": "2026-05-30"})
    move(client, received.json["id"], net.as_provider, received.headers["ETag"],
         status="received")
    clock.freeze(start + timedelta(days=60))

    for _ in range(2):
        listed = client.get("/api/v1/referrals?overdue=true", headers=net.as_provider)
        assert {r["id"] for r in listed.json["items"]} == {unacknowledged,
                                                           received.json["id"]}
        assert {r["status"] for r in listed.json["items"]} == {"on_hold"}


def test_a_clock_that_ran_out_45_days_after_delivery_cannot_be_paused_by_a_late_acceptance(
        client, consented):
    """Delivered on day 0, accepted on day 10: the 45 days still end on day 45 (counted from
    acceptance they ended on day 55). A documented hold on day 50 pauses nothing, and the
    referral stays on the receiver's overdue list."""
    clock.freeze(START)
    sent = send(client, consented, part_c={"identified_on": START.date().isoformat()})
    rid = sent.json["id"]
    clock.freeze(START + timedelta(days=10))
    accepted = move(client, rid, consented.as_provider, sent.headers["ETag"], status="accepted")
    due = (START.date() + timedelta(days=45)).isoformat()
    assert accepted.json["part_c"]["timeline_due_by"] == due
    clock.freeze(START + timedelta(days=50))
    held = move(client, rid, consented.as_provider, accepted.headers["ETag"],
                status="on_hold", reason="family_circumstances", note="The family moved.")
    assert held.status_code == 200, held.json
    assert (held.json["part_c"]["timeline_due_by"],
            held.json["part_c"]["timeline_paused_since"]) == (due, None)
    listed = client.get("/api/v1/referrals?overdue=true", headers=consented.as_provider)
    assert [r["id"] for r in listed.json["items"]] == [rid]
