"""End to end: a family goes from a pediatric clinic to an infant mental health provider and
back to closure, under consent, with the audit trail showing each step."""

from datetime import date, timedelta

from audit.chain import verify
from core import time as clock
from core.db import db
from tests.conftest import assert_problem, audit_events
from tests.referrals.conftest import FULL, move, send


def test_a_referral_from_clinic_to_provider_and_back_to_closure(app, client, make, net):
    consent = make.consent(net.family, [net.clinic, net.provider],
                           purposes=("referral", "care_coordination"), categories=FULL)

    # The clinic sends it; the send rests on the consent.
    sent = send(client, net, part_c={"identified_on": (clock.now() - timedelta(days=2))
                                     .date().isoformat()})
    assert sent.status_code == 201, sent.json
    referral = sent.json
    assert referral["status"] == "requested"
    assert referral["consent_ids"] == [str(consent.id)]
    assert sent.headers["Location"] == f"/api/v1/referrals/{referral['id']}"
    assert referral["part_c"]["referral_due_by"] == (
        date.fromisoformat(referral["part_c"]["identified_on"]) + timedelta(days=7)).isoformat()
    rid, etag = referral["id"], sent.headers["ETag"]

    # The provider sees the shared categories; a third organization learns nothing.
    seen = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider)
    assert seen.status_code == 200
    assert seen.json["redacted"] == []
    assert seen.json["family"]["child"]["given_name"] == "Amara"
    assert seen.json["family"]["caregivers"][0]["phone"] == "+17345550101"
    assert seen.json["reasons"] == ["feeding_concerns", "caregiver_depression"]
    assert seen.headers["ETag"] == etag
    assert_problem(client.get(f"/api/v1/referrals/{rid}", headers=net.as_stranger),
                   404, "not-found")

    # The provider receives, accepts, schedules, writes to the clinic.
    for step in ({"status": "received"}, {"status": "accepted"},
                 {"status": "in_progress", "business_status": "scheduled",
                  "note": "First home visit booked."}):
        moved = move(client, rid, net.as_provider, etag, **step)
        assert moved.status_code == 200, moved.json
        assert moved.json["status"] == step["status"]
        assert moved.headers["ETag"] != etag
        etag = moved.headers["ETag"]
    assert moved.json["part_c"]["timeline_due_by"] == (
        date.fromisoformat(moved.json["part_c"]["received_on"]) + timedelta(days=45)).isoformat()

    # The loop closes: the clinic sees the business status and the note, by consent.
    back = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic)
    assert back.json["status"] == "in_progress"
    assert back.json["business_status"] == "scheduled"
    assert back.json["redacted"] == []
    notes = client.get(f"/api/v1/referrals/{rid}/notes", headers=net.as_clinic).json["items"]
    assert [n["body"] for n in notes] == ["First home visit booked."]

    # The mother revokes her consent: the provider loses the family at once and the referral
    # goes on hold in the same transaction as the revocation.
    revoked = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                          json={"reason": "Family wants to pause sharing."})
    assert revoked.status_code == 200
    held = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider)
    assert held.json["status"] == "on_hold"
    assert held.json["status_reason"] == "consent_ended"
    assert "family" in held.json and "child" not in held.json["family"]
    assert set(held.json["redacted"]) >= {"identity", "contact", "referral_reason"}
    assert "reasons" not in held.json
    timeline = client.get(f"/api/v1/referrals/{rid}/events", headers=net.as_provider).json
    assert timeline["items"][0]["to_status"] == "on_hold"
    assert timeline["items"][0]["organization_id"] is None
    assert timeline["items"][0]["reason"] == "consent_ended"
    etag = held.headers["ETag"]

    # Resuming without consent is refused; with a new consent the provider completes it.
    refused = assert_problem(move(client, rid, net.as_provider, etag, status="in_progress"),
                             403, "consent-required", extra={"missing_categories"})
    assert refused["missing_categories"] == ["contact", "identity", "referral_reason"]
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    for step in ({"status": "in_progress", "business_status": "engaged"},
                 {"status": "completed", "outcome": "goals_met"}):
        moved = move(client, rid, net.as_provider, etag, **step)
        assert moved.status_code == 200, moved.json
        etag = moved.headers["ETag"]
    closed = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json
    assert (closed["status"], closed["outcome"]) == ("completed", "goals_met")

    with app.app_context():
        trail = audit_events(resource_id=rid)
        steps = [(e.action, e.outcome, e.reason) for e in trail]
        assert steps[0] == ("create", "permit", "sent")
        assert ("read", "deny", "not_found") in steps  # the third organization
        assert ("transition", "permit", "consent_ended") in steps
        # Each move is one event naming what it wrote; its answer, showing the family under
        # consent, a read of its own.
        moves = [e for e in trail if e.action == "transition" and e.outcome == "permit"
                 and e.organization_id == net.provider.id]
        assert len(moves) == 5
        assert all(not e.consent_ids and e.reason == "receiver" for e in moves)
        assert "service_status" in moves[-1].categories  # the completion's outcome
        reads = [e for e in trail if e.action == "read" and e.outcome == "permit"
                 and e.organization_id == net.provider.id]
        assert sum(e.purpose == "referral" and bool(e.consent_ids) for e in reads) >= 5
        assert reads[0].categories == ["contact", "identity", "referral_reason"]
        assert reads[0].consent_ids == [str(consent.id)]
        assert reads[0].purpose == "referral"
        assert verify(db.session).valid


def test_partial_consent_redacts_what_it_does_not_cover(client, make, net):
    wide = make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                        categories=("identity", "contact", "referral_reason"))
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=("identity", "referral_reason"))
    rid = send(client, net).json["id"]
    assert client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json["redacted"] == []

    # The clinic sees its own referral whole, but not the provider's feedback: the family
    # gave no consent for care coordination.
    etag = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).headers["ETag"]
    etag = move(client, rid, net.as_provider, etag, status="accepted").headers["ETag"]
    move(client, rid, net.as_provider, etag, status="in_progress", business_status="scheduled")
    own = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json
    assert own["status"] == "in_progress"
    assert own["redacted"] == ["service_status"]
    assert "business_status" not in own
    assert own["reasons"] == ["feeding_concerns", "caregiver_depression"]

    # Contact was only in the wider consent: once it is revoked the provider keeps what the
    # narrower one covers, and contact is withheld and named.
    client.post(f"/api/v1/consents/{wide.id}/revoke", headers=net.as_clinic,
                json={"reason": "Only the name and the reasons, please."})
    seen = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json
    assert seen["redacted"] == ["contact"]
    assert seen["family"]["redacted"] == ["contact"]
    assert seen["family"]["child"]["given_name"] == "Amara"
    assert "phone" not in seen["family"]["caregivers"][0]
    assert "preferred_language" not in seen["family"]
    assert seen["reasons"] == ["feeding_concerns", "caregiver_depression"]
    assert seen["status"] == "on_hold"  # it shares contact, which nothing covers now
