"""When the referrer identified a concern (Part C's `identified_on`, and its own 7 days,
`referral_due_by`) is `referral_reason` it wrote: a receiver sees it as it sees the reasons,
under consent, and not once that ends. That the referral is Part C's, and the receiver's own
45 days from receipt, the receiver always sees: it keeps that clock (a referrals' review:
the date was shown whatever the family agreed to, and after its consent was revoked)."""

from datetime import UTC, datetime

import pytest

from core import time as clock
from tests.referrals.conftest import move, network, send

IDENTIFIED = {"identified_on": "2026-06-09"}


@pytest.fixture
def net(make):
    clock.freeze(datetime(2026, 6, 10, 15, 0, tzinfo=UTC))
    return network(make)


def _received(client, net, shared):
    sent = send(client, net, shared_categories=shared, part_c=IDENTIFIED)
    assert sent.status_code == 201, sent.json
    moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                 status="accepted")
    assert moved.status_code == 200, moved.json
    return sent.json["id"]


def _part_c(client, referral_id, headers):
    answer = client.get(f"/api/v1/referrals/{referral_id}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json["part_c"], answer.json["redacted"]


def test_a_receiver_not_shared_the_reasons_keeps_its_clock_without_the_identification(
        client, make, net):
    make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    referral_id = _received(client, net, ["identity"])

    seen, _ = _part_c(client, referral_id, net.as_provider)
    listed = client.get("/api/v1/referrals?direction=received",
                        headers=net.as_provider).json["items"]

    assert seen.keys() == {"received_on", "timeline_due_by", "timeline_paused_since"}
    assert seen["timeline_due_by"] == "2026-07-25"
    assert [item["part_c"] for item in listed] == [seen]
    own, _ = _part_c(client, referral_id, net.as_clinic)  # the referrer wrote it
    assert (own["identified_on"], own["referral_due_by"]) == ("2026-06-09", "2026-06-16")


def test_a_receiver_shared_the_reasons_sees_the_identification_until_consent_ends(
        client, make, net):
    consent = make.consent(net.family, [net.clinic, net.provider],
                           categories=("identity", "referral_reason"))
    referral_id = _received(client, net, ["identity", "referral_reason"])

    seen, _ = _part_c(client, referral_id, net.as_provider)
    assert (seen["identified_on"], seen["referral_due_by"]) == ("2026-06-09", "2026-06-16")

    revoked = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                          json={"reason": "The family asked."})
    assert revoked.status_code == 200, revoked.json
    after, redacted = _part_c(client, referral_id, net.as_provider)
    assert "identified_on" not in after and "referral_due_by" not in after
    assert "referral_reason" in redacted
