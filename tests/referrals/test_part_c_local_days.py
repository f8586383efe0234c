"""Part C's days are the service's calendar days (TIME_ZONE, America/Detroit by default),
not UTC's: an evening in Michigan is already the next day in UTC (a time review, session 11)."""

from datetime import UTC, datetime

import pytest

from core import time as clock
from tests.conftest import assert_validation_error
from tests.referrals.conftest import FULL, move, network, send

EVENING_OF_JUNE_10 = datetime(2026, 6, 11, 2, 30, tzinfo=UTC)  # 22:30 EDT, 10 June


@pytest.fixture
def net(make):
    clock.freeze(datetime(2026, 6, 1, 16, 0, tzinfo=UTC))
    n = network(make)
    make.consent(n.family, [n.clinic, n.provider], categories=FULL,
                 effective_at=datetime(2026, 1, 1, tzinfo=UTC), expires_in_days=365)
    return n


def _overdue(client, headers) -> list[str]:
    answer = client.get("/api/v1/referrals?overdue=true", headers=headers)
    assert answer.status_code == 200, answer.json
    return [r["id"] for r in answer.json["items"]]


def _received_on_the_evening_of_june_10(client, net) -> str:
    """Delivered, and accepted, at 22:30 on 10 June in Michigan."""
    clock.freeze(EVENING_OF_JUNE_10)
    sent = send(client, net, part_c={"identified_on": "2026-06-09"})
    moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                 status="accepted")
    assert moved.status_code == 200, moved.json
    return moved.json


def test_a_referral_received_on_a_michigan_evening_was_received_that_day(client, net):
    """Delivered and received at 22:30 on 10 June in Ann Arbor: received_on 10 June, 45 days
    to 25 July. Counted from the UTC date, it was the 11th and the 26th: a day more than
    Part C allows."""
    part_c = _received_on_the_evening_of_june_10(client, net)["part_c"]
    assert (part_c["received_on"], part_c["timeline_due_by"]) == ("2026-06-10", "2026-07-25")


def test_the_45_days_run_from_a_michigan_evening_s_delivery_not_next_morning_s_receipt(
        client, net):
    """Delivered at 22:30 on 10 June, acknowledged at 9:00 the next morning: received on the
    11th, due on 25 July all the same, 45 days from the delivery's day in Michigan."""
    clock.freeze(EVENING_OF_JUNE_10)
    sent = send(client, net, part_c={"identified_on": "2026-06-09"})
    assert sent.json["part_c"]["timeline_due_by"] == "2026-07-25"
    clock.freeze(datetime(2026, 6, 11, 13, 0, tzinfo=UTC))
    moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                 status="received")
    assert moved.status_code == 200, moved.json
    assert (moved.json["part_c"]["received_on"], moved.json["part_c"]["timeline_due_by"]) \
        == ("2026-06-11", "2026-07-25")


def test_it_is_overdue_the_day_after_its_local_due_day(client, net):
    rid = _received_on_the_evening_of_june_10(client, net)["id"]
    clock.freeze(datetime(2026, 7, 26, 3, 59, tzinfo=UTC))  # 23:59 EDT, 25 July: due today
    assert rid not in _overdue(client, net.as_provider)
    clock.freeze(datetime(2026, 7, 26, 16, 0, tzinfo=UTC))  # noon EDT, 26 July: a day late
    assert rid in _overdue(client, net.as_provider)


def test_a_draft_is_not_overdue_on_the_evening_of_its_due_day(client, net):
    """identified_on is the referrer's day (9 June): due 16 June. At 21:00 EDT on the 16th
    the referrer still has until midnight; UTC is already on the 17th."""
    clock.freeze(datetime(2026, 6, 9, 15, 0, tzinfo=UTC))
    draft = send(client, net, status="draft", part_c={"identified_on": "2026-06-09"})
    assert draft.json["part_c"]["referral_due_by"] == "2026-06-16"
    clock.freeze(datetime(2026, 6, 17, 1, 0, tzinfo=UTC))  # 21:00 EDT, 16 June
    assert draft.json["id"] not in _overdue(client, net.as_clinic)
    clock.freeze(datetime(2026, 6, 17, 4, 0, tzinfo=UTC))  # 00:00 EDT, 17 June
    assert draft.json["id"] in _overdue(client, net.as_clinic)


def test_a_concern_identified_today_in_michigan_is_not_in_the_future(client, net):
    """At 21:00 EDT on 16 June (01:00 UTC on the 17th) a concern identified on the 17th is in
    the future; one identified on the 16th is today's."""
    clock.freeze(datetime(2026, 6, 17, 1, 0, tzinfo=UTC))
    assert send(client, net, part_c={"identified_on": "2026-06-16"}).status_code == 201
    assert_validation_error(send(client, net, part_c={"identified_on": "2026-06-17"}),
                            "part_c.identified_on")
