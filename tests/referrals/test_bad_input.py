"""Every refusal of the referrals API is a documented 4xx that stores nothing."""

import uuid
from datetime import timedelta

import pytest

from core import time as clock
from referrals.models import Referral, ReferralEvent, ReferralNote
from tests.conftest import assert_problem, assert_validation_error, audit_events, count
from tests.referrals.conftest import FULL, move, send


def _stored(app) -> tuple[int, int, int]:
    with app.app_context():
        return count(Referral), count(ReferralEvent), count(ReferralNote)


@pytest.mark.parametrize("overrides, paths", [
    ({"reasons": ["colic"]}, ["reasons.0"]),
    ({"reasons": []}, ["reasons"]),
    ({"reasons": ["other", "other"]}, ["reasons"]),
    ({"shared_categories": ["contact"]}, ["shared_categories"]),
    ({"shared_categories": ["identity", "coordination_notes"]}, ["shared_categories.1"]),
    ({"urgency": "emergency"}, ["urgency"]),
    ({"status": "accepted"}, ["status"]),
    ({"family_id": "not-a-uuid"}, ["family_id"]),
    ({"part_c": {"identified_on": "2999-01-01"}}, ["part_c.identified_on"]),
    ({"part_c": {"identified_on": "2026-01-01", "extra": 1}}, ["part_c.extra"]),
    ({"part_c": {"identified_on": "20260101"}}, ["part_c.identified_on"]),
    ({"part_c": {"identified_on": "2026-W01-4"}}, ["part_c.identified_on"]),
    ({"reason_detail": "x" * 4001}, ["reason_detail"]),
    ({"priority": "high"}, ["priority"]),
])
def test_invalid_referrals_are_422_naming_the_field(app, client, consented, overrides, paths):
    assert_validation_error(send(client, consented, **overrides), *paths)
    assert _stored(app) == (0, 0, 0)


def test_a_family_the_sender_cannot_see_is_404(app, client, make, consented):
    other = make.family(consented.stranger, given_name="Lena")
    response = send(client, consented, family_id=str(other.id))
    assert_problem(response, 404, "not-found")
    unknown = send(client, consented, family_id=str(uuid.uuid4()))
    assert unknown.json == {**response.json, "instance": unknown.json["instance"],
                            "request_id": unknown.json["request_id"]}
    assert _stored(app) == (0, 0, 0)


def test_a_receiver_not_accepting_referrals_unknown_or_the_sender_itself_is_422(
        app, client, make, consented):
    closed = make.organization(name="Full House IMH", accepting_referrals=False)
    make.consent(consented.family, [consented.clinic, closed], categories=FULL)
    for receiver in (closed.id, uuid.uuid4(), consented.clinic.id):
        assert_validation_error(send(client, consented, to_organization_id=str(receiver)),
                                "to_organization_id")
    assert _stored(app) == (0, 0, 0)
    # A draft may name a receiver that is not accepting yet; sending it may not.
    draft = send(client, consented, to_organization_id=str(closed.id), status="draft")
    assert draft.status_code == 201
    assert_validation_error(move(client, draft.json["id"], consented.as_clinic,
                                 draft.headers["ETag"], status="requested"),
                            "to_organization_id")


@pytest.mark.parametrize("status", ["requested", "draft"])
def test_an_organization_accepting_referrals_cannot_refer_to_itself(app, client, consented,
                                                                    status):
    """The provider accepts referrals and sees the family under consent: a referral to
    itself is still 422 naming the receiver (the database's two-sides check would be a 500)."""
    response = send(client, consented, consented.as_provider, status=status,
                    to_organization_id=str(consented.provider.id))
    body = assert_validation_error(response, "to_organization_id")
    assert body["errors"]["to_organization_id"] == ["A referral goes to another organization"]
    assert _stored(app) == (0, 0, 0)


def test_shared_categories_no_consent_covers_are_403_naming_them(app, client, make, net):
    make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    response = send(client, net)
    body = assert_problem(response, 403, "consent-required", extra={"missing_categories"})
    assert body["missing_categories"] == ["contact", "referral_reason"]
    assert _stored(app) == (0, 0, 0)
    with app.app_context():
        refusal, = audit_events(outcome="deny", resource_type="referral")
    assert (refusal.action, refusal.reason, refusal.purpose) == ("create", "partial_consent",
                                                                 "referral")
    assert refusal.categories == ["contact", "identity", "referral_reason"]


def test_a_consent_for_another_purpose_or_other_organizations_does_not_send(
        app, client, make, net):
    make.consent(net.family, [net.clinic, net.provider], purposes=("treatment",),
                 categories=FULL)
    make.consent(net.family, [net.clinic, net.stranger], categories=FULL)
    assert_problem(send(client, net), 403, "consent-required", extra={"missing_categories"})
    assert _stored(app) == (0, 0, 0)


def test_a_draft_sent_after_its_consent_ended_is_refused_and_stays_a_draft(client,
                                                                           consented):
    """Sending a draft is judged under the consents in force then: refused, it is unsent."""
    draft = send(client, consented, status="draft")
    rid = draft.json["id"]
    clock.freeze(consented.consent.expires_at + timedelta(seconds=1))
    refused = move(client, rid, consented.as_clinic, draft.headers["ETag"], status="requested")
    body = assert_problem(refused, 403, "consent-required", extra=("missing_categories",))
    assert body["missing_categories"] == ["contact", "identity", "referral_reason"]
    read = client.get(f"/api/v1/referrals/{rid}", headers=consented.as_clinic)
    assert (read.json["status"], read.json["sent_at"], read.headers["ETag"]) == \
        ("draft", None, draft.headers["ETag"])
    for path in ("", "/events", "/notes"):
        assert_problem(client.get(f"/api/v1/referrals/{rid}{path}",
                                  headers=consented.as_provider), 404, "not-found")
    assert client.get("/api/v1/referrals", headers=consented.as_provider).json["items"] == []


@pytest.fixture
def sent(client, consented):
    response = send(client, consented)
    assert response.status_code == 201
    return response.json["id"], response.headers["ETag"]


def test_transitions_without_or_with_a_stale_if_match(app, client, consented, sent):
    rid, etag = sent
    before = _stored(app)
    missing = client.post(f"/api/v1/referrals/{rid}/transitions", json={"status": "received"},
                          headers=consented.as_provider)
    assert_problem(missing, 428, "precondition-required")
    assert_problem(move(client, rid, consented.as_provider, '"v999"', status="received"),
                   412, "precondition-failed")
    assert _stored(app) == before
    assert move(client, rid, consented.as_provider, etag, status="received").status_code == 200
    # The second of two staff acting on what they both read is refused.
    assert_problem(move(client, rid, consented.as_provider, etag, status="accepted"),
                   412, "precondition-failed")
    with app.app_context():
        refusals = audit_events(outcome="deny", resource_id=rid)
    # Each refusal names the family, so the auditors' family filter finds it.
    assert [(e.reason, e.family_id) for e in refusals] == [
        ("precondition_required", consented.family.id),
        ("precondition_failed", consented.family.id),
        ("precondition_failed", consented.family.id)]


@pytest.mark.parametrize("body, status, slug", [
    ({"status": "completed", "outcome": "goals_met"}, 409, "invalid-transition"),
    ({"status": "in_progress"}, 409, "invalid-transition"),
    ({"status": "requested"}, 409, "invalid-transition"),
    ({"status": "draft"}, 422, "validation-error"),
    ({"status": "lost"}, 422, "validation-error"),
])
def test_transitions_out_of_order(app, client, consented, sent, body, status, slug):
    rid, etag = sent
    before = _stored(app)
    assert_problem(move(client, rid, consented.as_provider, etag, **body), status, slug)
    assert _stored(app) == before


def test_the_other_sides_moves_are_403(app, client, consented, sent):
    rid, etag = sent
    before = _stored(app)
    for status in ("received", "accepted"):
        assert_problem(move(client, rid, consented.as_clinic, etag, status=status),
                       403, "forbidden")
    assert _stored(app) == before
    with app.app_context():
        assert count(Referral) == 1


@pytest.mark.parametrize("body, paths", [
    ({"status": "rejected"}, ["reason"]),
    ({"status": "rejected", "reason": "family_moved"}, ["reason"]),
    ({"status": "cancelled"}, ["reason"]),
    ({"status": "accepted", "reason": "at_capacity"}, ["reason"]),
    ({"status": "accepted", "outcome": "goals_met"}, ["outcome"]),
    ({"status": "accepted", "business_status": "scheduled"}, ["business_status"]),
    ({"status": "received", "note": ""}, ["note"]),
    ({"status": "received", "reason": "consent_ended"}, ["reason"]),
    ({"status": "received", "extra": True}, ["extra"]),
])
def test_transitions_missing_or_misplaced_fields_are_422(app, client, consented, sent, body,
                                                         paths):
    rid, etag = sent
    before = _stored(app)
    assert_validation_error(move(client, rid, consented.as_provider, etag, **body), *paths)
    assert _stored(app) == before


def test_completion_needs_an_outcome_and_a_pausing_hold_a_note(client, consented, sent):
    rid, etag = sent
    etag = move(client, rid, consented.as_provider, etag, status="accepted").headers["ETag"]
    assert_validation_error(move(client, rid, consented.as_provider, etag, status="completed"),
                            "outcome")
    assert_validation_error(move(client, rid, consented.as_provider, etag, status="on_hold",
                                 reason="family_circumstances"), "note")
    assert_validation_error(move(client, rid, consented.as_provider, etag, status="on_hold"),
                            "reason")


def test_a_closed_referral_moves_no_further(client, consented, sent):
    rid, etag = sent
    etag = move(client, rid, consented.as_clinic, etag, status="cancelled",
                reason="sent_in_error").headers["ETag"]
    for body in ({"status": "accepted"}, {"status": "cancelled", "reason": "other"}):
        assert_problem(move(client, rid, consented.as_provider, etag, **body),
                       409, "invalid-transition")


def test_notes_with_unknown_or_family_record_categories_are_422(app, client, consented, sent):
    rid, _ = sent
    before = _stored(app)
    for body, path in (({"body": "hi", "category": "gossip"}, "category"),
                       ({"body": "hi", "category": "contact"}, "category"),
                       ({"body": ""}, "body"),
                       ({"body": "x" * 4001}, "body"),
                       ({"body": "hi", "author": "me"}, "author")):
        response = client.post(f"/api/v1/referrals/{rid}/notes", json=body,
                               headers=consented.as_provider)
        assert_validation_error(response, path)
    assert _stored(app) == before


def test_a_reused_idempotency_key_with_another_body_is_422(app, client, consented):
    headers = {**consented.as_clinic, "Idempotency-Key": "send-42"}
    first = send(client, consented, headers)
    again = send(client, consented, headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert again.headers["ETag"] == first.headers["ETag"]
    other = send(client, consented, headers, urgency="urgent")
    assert_problem(other, 422, "idempotency-key-reused")
    assert _stored(app)[0] == 1


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/referrals/not-a-uuid", 404),  # no such address: the id is not one
    ("/api/v1/referrals/not-a-uuid/events", 404),
    ("/api/v1/referrals?cursor=forged", 422),
    ("/api/v1/referrals?limit=0", 422),
    ("/api/v1/referrals?limit=201", 422),
    ("/api/v1/referrals?direction=up", 422),
    ("/api/v1/referrals?status=lost", 422),
    ("/api/v1/referrals?overdue=yes", 422),
    ("/api/v1/referrals?updated_since=yesterday", 422)])
def test_bad_ids_cursors_and_filters(client, consented, path, status):
    response = client.get(path, headers=consented.as_clinic)
    assert_problem(response, status, "not-found" if status == 404 else "validation-error")


@pytest.mark.parametrize("instant, status", [
    ("2026-01-01T00:00:00Z", 200),
    ("2026-01-01T02:00:00.123456+02:00", 200),
    ("20260101T000000Z", 422),          # ISO 8601 basic form
    ("2026-W01-4T00:00:00Z", 422),      # ISO week date
    ("2026-01-01T00Z", 422),            # hours only
    ("2026-01-01T00:00:00+05", 422),    # an offset without minutes
    ("2026-01-01T00:00:00+0500", 422),
    ("2026-01-01 00:00:00Z", 422),
])
def test_updated_since_is_an_rfc_3339_date_time(client, consented, instant, status):
    """RFC 3339 section 5.6: YYYY-MM-DDTHH:MM:SS, optional fractions, `Z` or `+HH:MM`; not the
    other ISO 8601 forms Python's parser takes."""
    response = client.get("/api/v1/referrals", query_string={"updated_since": instant},
                          headers=consented.as_clinic)

    if status == 422:
        assert_validation_error(response, "updated_since")
    else:
        assert response.status_code == 200, response.get_data(as_text=True)


def test_refused_moves_and_sends_are_on_the_trail(app, client, make, consented, sent):
    rid, etag = sent
    move(client, rid, consented.as_provider, '"v999"', status="received")          # 412
    client.post(f"/api/v1/referrals/{rid}/transitions", json={"status": "received"},
                headers=consented.as_provider)                                   # 428
    move(client, rid, consented.as_provider, etag, status="completed",
         outcome="goals_met")                                                    # 409
    move(client, rid, consented.as_clinic, etag, status="accepted")              # 403
    closed = make.organization(name="Closed IMH")
    send(client, consented, to_organization_id=str(closed.id))                   # 422
    with app.app_context():
        refusals = audit_events(outcome="deny")
    assert [(e.action, e.reason) for e in refusals] == [
        ("transition", "precondition_failed"), ("transition", "precondition_required"),
        ("transition", "invalid_transition"), ("transition", "wrong_side"),
        ("create", "not_accepting_referrals")]
    assert all(e.resource_id == rid for e in refusals[:4])
    assert refusals[4].family_id == consented.family.id


def test_a_move_or_send_refused_as_invalid_is_a_deny_event_naming_the_family(
        app, client, consented, sent):
    """README, "The audit trail": every refusal of an authenticated organization is an event.
    A rejection without its reason, and a Part C concern dated before the child's birth, are
    refusals of an action on this family's referral: each is a deny event naming the family
    and the referral, and nothing else is written."""
    rid, etag = sent
    received = move(client, rid, consented.as_provider, etag, status="received")
    before = _stored(app)
    assert_validation_error(move(client, rid, consented.as_provider, received.headers["ETag"],
                                 status="rejected"), "reason")
    birth = consented.family.child_birth_date
    assert_validation_error(send(client, consented, part_c={
        "identified_on": (birth - timedelta(days=1)).isoformat()}), "part_c.identified_on")
    assert _stored(app) == before
    with app.app_context():
        refusals = [(e.action, e.reason, e.resource_type, e.resource_id, e.family_id)
                    for e in audit_events(outcome="deny")]
    assert refusals == [
        ("transition", "validation_error", "referral", rid, consented.family.id),
        ("create", "validation_error", "referral", None, consented.family.id)]


def test_a_body_refused_before_the_family_is_found_is_not_on_the_trail(app, client,
                                                                      consented, sent):
    """A malformed body is refused before any family is looked at: there is nothing about a
    family to record, and a client cannot grow the trail with garbage."""
    rid, etag = sent
    assert_validation_error(move(client, rid, consented.as_provider, etag, status="lost"),
                            "status")
    with app.app_context():
        assert audit_events(outcome="deny") == []
