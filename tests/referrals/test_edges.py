"""Edges: unsent drafts, senders that do not hold the family, replays, holds racing moves,
the audit of each purpose, and the Part C clock across holds."""

import uuid
from datetime import timedelta

import pytest

from audit.models import AuditEvent
from core import time as clock
from core.db import db
from tests.conftest import assert_problem, audit_events, bearer, statements_sent
from tests.referrals.conftest import FULL, LONG, accepted, move, network, send


def test_a_draft_cancelled_before_it_was_sent_stays_the_senders_alone(client, consented):
    draft = send(client, consented, status="draft",
                 reasons=["domestic_violence_exposure"])
    rid = draft.json["id"]
    cancelled = move(client, rid, consented.as_clinic, draft.headers["ETag"],
                     status="cancelled", reason="sent_in_error")
    assert cancelled.status_code == 200
    for response in (client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider),
                     client.get(f"/api/v1/referrals/{rid}/events",
                                headers=consented.as_provider),
                     client.post(f"/api/v1/referrals/{rid}/notes", json={"body": "hi"},
                                 headers=consented.as_provider)):
        assert_problem(response, 404, "not-found")
    assert client.get("/api/v1/referrals", headers=consented.as_provider).json["items"] == []


@pytest.fixture
def relayed(make, net):
    """The clinic holds the family; early intervention refers it on to the provider."""
    early_on = make.organization(name="Early On", type="early_intervention",
                                 accepting_referrals=True)
    net.early_on = early_on
    net.as_early_on = bearer(make.token(early_on, lifetime=LONG))
    net.to_early_on = make.consent(net.family, [net.clinic, early_on],
                                   categories=("identity", "contact"))
    net.to_provider = make.consent(net.family, [net.clinic, early_on, net.provider],
                                   categories=("identity", "contact", "referral_reason"))
    return net


def test_a_sender_that_does_not_hold_the_family_sends_under_consent(client, relayed):
    sent = send(client, relayed, headers=relayed.as_early_on)
    assert sent.status_code == 201, sent.json
    # The send rests on the provider's consent and on Early On's own, to see the family.
    assert set(sent.json["consent_ids"]) == {str(relayed.to_provider.id),
                                             str(relayed.to_early_on.id)}
    seen = client.get(f"/api/v1/referrals/{sent.json['id']}", headers=relayed.as_provider)
    assert seen.json["redacted"] == []
    assert seen.json["family"]["caregivers"][0]["phone"] == "+17345550101"


def _disclosures(client, net, organization) -> list[dict]:
    """The family's accounting of disclosures to `organization`, newest first."""
    items = client.get(f"/api/v1/families/{net.family.id}/disclosures",
                       headers=net.as_clinic).json["items"]
    return [i for i in items if i["organization_id"] == str(organization.id)]


def test_sending_a_draft_records_what_its_answer_disclosed(client, relayed):
    """Sent from a draft, as created sent: the answer shows a sender that does not hold the
    family its record under consent, and the family's accounting of disclosures says so."""
    draft = send(client, relayed, headers=relayed.as_early_on, status="draft")
    assert draft.status_code == 201, draft.json
    before = _disclosures(client, relayed, relayed.early_on)
    sent = move(client, draft.json["id"], relayed.as_early_on, draft.headers["ETag"],
                status="requested")
    assert sent.status_code == 200, sent.json
    assert sent.json["family"]["caregivers"][0]["phone"] == "+17345550101"
    after = _disclosures(client, relayed, relayed.early_on)
    assert len(after) == len(before) + 1, after
    assert (after[0]["action"], after[0]["purpose"]) == ("read", "referral")
    assert {"identity", "contact"} <= set(after[0]["categories"])
    assert str(relayed.to_early_on.id) in after[0]["consent_ids"]


def test_a_relaying_senders_move_names_each_purpose_its_answer_disclosed_for(
        app, client, make, relayed):
    """Early On cancels a referral whose 45-day clock the provider keeps: its answer shows
    the family's record (for `referral`) and the provider's clock (for
    `care_coordination`); the accounting names each with its purpose, never none."""
    feedback = make.consent(relayed.family, [relayed.early_on, relayed.provider],
                            purposes=("care_coordination",), categories=("service_status",))
    sent = send(client, relayed, headers=relayed.as_early_on,
                part_c={"identified_on": clock.today().isoformat()})
    taken = move(client, sent.json["id"], relayed.as_provider, sent.headers["ETag"],
                 status="accepted")
    cancelled = move(client, sent.json["id"], relayed.as_early_on, taken.headers["ETag"],
                     status="cancelled", reason="no_longer_needed")
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["part_c"]["timeline_due_by"] is not None
    with app.app_context():
        events = audit_events(request_id=cancelled.headers["X-Request-ID"])
    assert sorted((e.action, e.purpose or "") for e in events) == [
        ("read", "care_coordination"), ("read", "referral"), ("transition", "")]
    by_purpose = {e.purpose: e for e in events if e.action == "read"}
    assert by_purpose["care_coordination"].categories == ["service_status"]
    assert by_purpose["care_coordination"].consent_ids == [str(feedback.id)]
    assert {"identity", "contact"} <= set(by_purpose["referral"].categories)
    assert str(feedback.id) not in by_purpose["referral"].consent_ids


def test_revoking_any_consent_a_referral_rests_on_holds_it_at_once(app, client, relayed):
    """The hold names the consent whose end held it, not those it rested on still in force
    (Early On's own sight of the family)."""
    rid = send(client, relayed, headers=relayed.as_early_on).json["id"]
    client.post(f"/api/v1/consents/{relayed.to_provider.id}/revoke", headers=relayed.as_clinic,
                json={"reason": "No more sharing with the provider."})
    with app.app_context():
        held = audit_events(action="transition", reason="consent_ended", resource_id=rid)
        assert len(held) == 1
        assert held[0].consent_ids == [str(relayed.to_provider.id)]
        assert held[0].request_path.endswith("/revoke")  # in the revoking request itself


def _cover_the_provider_alone(make, net):
    """Consents that cover everything the relayed referral shares for the provider (the
    clinic's record, Early On's reasons), and none that lets Early On see the family."""
    return (make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                         categories=("identity", "contact")),
            make.consent(net.family, [net.early_on, net.provider], purposes=("referral",),
                         categories=("identity", "contact", "referral_reason")))


def _revoke(client, net, *consents):
    for consent in consents:
        assert client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                           json={"reason": "The family ended it."}).status_code == 200


def test_a_referral_its_receiver_still_may_see_whole_stays_open_when_the_sender_may_not(
        app, client, make, relayed):
    """The consents that let Early On see the family end; those the provider reads the
    referral under stay. The sender's sight of the family was a condition of passing it on,
    not of the provider's work: the referral stays open, the provider sees it whole, and
    Early On sees only what is its own (the status, the reasons it wrote)."""
    rid, _ = accepted(client, relayed, headers=relayed.as_early_on)
    _cover_the_provider_alone(make, relayed)
    _revoke(client, relayed, relayed.to_provider, relayed.to_early_on)

    seen = client.get(f"/api/v1/referrals/{rid}", headers=relayed.as_provider).json
    assert (seen["status"], seen["redacted"]) == ("accepted", [])
    by_sender = client.get(f"/api/v1/referrals/{rid}", headers=relayed.as_early_on).json
    assert by_sender["status"] == "accepted"
    assert {"identity", "contact"} <= set(by_sender["redacted"])
    assert "given_name" not in str(by_sender.get("family"))
    with app.app_context():
        assert audit_events(reason="consent_ended", resource_id=rid) == []


def test_a_referral_held_when_its_consents_ended_resumes_under_the_receivers_consents(
        app, client, make, relayed):
    """Every consent ends: the referral is held. New consents cover what it shares for the
    provider, though none lets Early On see the family again: the provider resumes it, and
    it rests on the new consents."""
    rid, _ = accepted(client, relayed, headers=relayed.as_early_on)
    _revoke(client, relayed, relayed.to_provider, relayed.to_early_on)
    held = client.get(f"/api/v1/referrals/{rid}", headers=relayed.as_provider)
    assert (held.json["status"], held.json["status_reason"]) == ("on_hold", "consent_ended")
    record, reasons = _cover_the_provider_alone(make, relayed)

    resumed = move(client, rid, relayed.as_provider, held.headers["ETag"], status="in_progress")
    assert resumed.status_code == 200, resumed.json
    assert set(resumed.json["consent_ids"]) == {str(record.id), str(reasons.id)}
    assert resumed.json["redacted"] == []


def test_a_relay_needs_a_consent_naming_the_sender_and_the_receiver(app, client, make, net):
    """Consents clinic+Early On and clinic+provider do not let Early On pass the family on to
    the provider: no consent names those two together."""
    early_on = make.organization(name="Early On", type="early_intervention")
    as_early_on = bearer(make.token(early_on, lifetime=LONG))
    make.consent(net.family, [net.clinic, early_on], categories=("identity", "contact"))
    make.consent(net.family, [net.clinic, net.provider], categories=("identity", "contact"))
    refused = send(client, net, headers=as_early_on, shared_categories=["identity", "contact"])
    assert_problem(refused, 403, "consent-required", extra=["missing_categories"])
    assert refused.json["missing_categories"] == ["contact", "identity"]
    assert client.get("/api/v1/referrals", headers=net.as_provider).json["items"] == []
    with app.app_context():
        assert [e.outcome for e in audit_events(action="create", resource_type="referral")] \
            == ["deny"]


def test_a_send_replayed_for_a_client_that_may_only_write_referrals(client, make, consented):
    as_sender = bearer(make.token(consented.clinic, scopes=("referrals:write",),
                                  lifetime=LONG))
    headers = {**as_sender, "Idempotency-Key": "write-only-1"}
    first = send(client, consented, headers=headers)
    assert first.status_code == 201, first.json
    again = send(client, consented, headers=headers)
    assert again.status_code == 201, again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    assert again.json["family"] == first.json["family"]


def test_a_replayed_note_is_recorded_as_a_look_at_that_note(app, client, consented):
    rid = send(client, consented).json["id"]
    headers = {**consented.as_clinic, "Idempotency-Key": "note-1"}
    body = {"body": "Mornings are best."}
    first = client.post(f"/api/v1/referrals/{rid}/notes", json=body, headers=headers)
    again = client.post(f"/api/v1/referrals/{rid}/notes", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    with app.app_context():
        [replay] = audit_events(reason="idempotent_replay")
        assert (replay.action, replay.resource_type, replay.resource_id) == \
            ("read", "referral_note", first.json["id"])


def test_a_replayed_send_shows_the_referral_as_a_read_would_now(client, relayed):
    headers = {**relayed.as_early_on, "Idempotency-Key": "relay-1"}
    first = send(client, relayed, headers=headers)
    assert first.json["family"]["caregivers"][0]["phone"] == "+17345550101"
    client.post(f"/api/v1/consents/{relayed.to_early_on.id}/revoke", headers=relayed.as_clinic,
                json={"reason": "Early On no longer involved."})
    client.post(f"/api/v1/consents/{relayed.to_provider.id}/revoke", headers=relayed.as_clinic,
                json={"reason": "Early On no longer involved."})
    again = send(client, relayed, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json["id"] == first.json["id"]
    assert "child" not in again.json["family"]
    assert again.json["family"]["caregivers"] == []  # nothing of them shown, not even how many


def test_a_move_made_on_the_etag_read_before_a_consent_expired_is_judged_from_on_hold(
        app, client, consented):
    sent = send(client, consented)
    rid, etag = sent.json["id"], sent.headers["ETag"]
    clock.freeze(consented.consent.expires_at + timedelta(minutes=1))
    assert_problem(move(client, rid, consented.as_provider, etag, status="received"),
                   409, "invalid-transition")
    cancelled = move(client, rid, consented.as_clinic, etag, status="cancelled",
                     reason="no_longer_needed")
    assert cancelled.status_code == 200, cancelled.json
    timeline = client.get(f"/api/v1/referrals/{rid}/events", headers=consented.as_clinic).json
    assert [e["to_status"] for e in timeline["items"]] == ["cancelled", "on_hold", "requested"]


def test_each_read_is_recorded_for_its_purpose_and_only_what_others_wrote(app, client,
                                                                         consented):
    sent = send(client, consented)
    rid = sent.json["id"]
    client.post(f"/api/v1/referrals/{rid}/notes", headers=consented.as_clinic,
                json={"body": "Mornings are best."})
    client.get(f"/api/v1/referrals/{rid}/notes", headers=consented.as_provider)
    client.get(f"/api/v1/referrals/{rid}", headers=consented.as_clinic)
    client.get("/api/v1/referrals?direction=received", headers=consented.as_provider)
    with app.app_context():
        notes = audit_events(resource_type="referral_notes",
                             organization_id=consented.provider.id)
        assert [(e.purpose, e.categories, e.reason) for e in notes] == \
            [("care_coordination", ["coordination_notes"], "consent")]
        own = audit_events(action="read", resource_type="referral",
                           organization_id=consented.clinic.id)
        # The clinic read its own referral: nothing came from another organization.
        assert [(e.categories, e.consent_ids, e.reason) for e in own] == [([], [], "sender")]
        search = audit_events(action="search", resource_type="referral")
        assert [(e.purpose, str(e.family_id)) for e in search] == \
            [("referral", str(consented.family.id))]
        disclosures = client.get(f"/api/v1/families/{consented.family.id}/disclosures",
                                 headers=consented.as_clinic).json["items"]
        assert {d["organization_id"] for d in disclosures} == {str(consented.provider.id)}


def test_sending_a_draft_is_recorded_as_the_send(app, client, consented):
    draft = send(client, consented, status="draft")
    move(client, draft.json["id"], consented.as_clinic, draft.headers["ETag"],
         status="requested")
    with app.app_context():
        sent = audit_events(reason="sent", resource_id=draft.json["id"])
        assert [(e.action, e.purpose, e.categories, e.consent_ids) for e in sent] == [
            ("transition", "referral", ["contact", "identity", "referral_reason"],
             [str(consented.consent.id)])]


def test_a_provider_documents_consent_attempts_after_a_consent_ended(client, make, net):
    consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    rid, etag = accepted(client, net, part_c={"identified_on": clock.local_date(start).isoformat()})
    clock.freeze(start + timedelta(days=10))
    client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                json={"reason": "Mother wants to think again."})
    etag = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).headers["ETag"]
    relabelled = move(client, rid, net.as_provider, etag, status="on_hold",
                      reason="awaiting_consent", note="Third call to the mother about consent.")
    assert relabelled.status_code == 200, relabelled.json
    assert relabelled.json["part_c"]["timeline_paused_since"] is not None
    # The clinic sees neither the 45-day clock nor its pauses without a consent covering
    # the provider's feedback; the 7-day clock is its own.
    clinic_view = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json
    assert set(clinic_view["part_c"]) == {"identified_on", "referral_due_by", "received_on"}
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    clock.freeze(start + timedelta(days=20))
    resumed = move(client, rid, net.as_provider, relabelled.headers["ETag"],
                   status="in_progress")
    assert resumed.status_code == 200, resumed.json
    assert resumed.json["part_c"]["timeline_due_by"] == \
        clock.local_date(start + timedelta(days=55)).isoformat()


def test_a_referral_held_before_it_was_accepted_resumes_to_the_receivers_decision(
        client, make, net):
    consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    rid = send(client, net).json["id"]
    client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                json={"reason": "Mother wants to think again."})
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    etag = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).headers["ETag"]
    assert_problem(move(client, rid, net.as_provider, etag, status="in_progress",
                        business_status="engaged"), 409, "invalid-transition")
    accepted = move(client, rid, net.as_provider, etag, status="accepted")
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["status"] == "accepted"


def test_a_referral_held_after_it_was_accepted_does_not_go_back_to_a_decision(
        client, make, net):
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    rid, etag = accepted(client, net)
    etag = move(client, rid, net.as_provider, etag, status="on_hold",
                reason="waitlist").headers["ETag"]
    assert_problem(move(client, rid, net.as_provider, etag, status="rejected",
                        reason="at_capacity"), 409, "invalid-transition")


@pytest.mark.parametrize("ending", ["revoked", "expired"])
def test_a_hold_the_receiver_put_becomes_consent_ended_when_the_consent_ends(
        app, client, make, net, ending):
    consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    rid, etag = accepted(client, net)
    move(client, rid, net.as_provider, etag, status="on_hold", reason="waitlist")
    if ending == "revoked":
        client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                    json={"reason": "Mother wants to think again."})
    else:
        clock.freeze(consent.expires_at + timedelta(seconds=1))
    seen = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic)
    assert (seen.json["status"], seen.headers["ETag"]) == ("on_hold", '"v4"')
    timeline = client.get(f"/api/v1/referrals/{rid}/events", headers=net.as_clinic).json
    assert [(e["from_status"], e["to_status"]) for e in timeline["items"]][0] == \
        ("on_hold", "on_hold")
    with app.app_context():
        [held] = audit_events(action="transition", reason="consent_ended")
        assert held.resource_id == rid
    again = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic)
    assert again.headers["ETag"] == '"v4"'  # held once, not at every look


def test_a_documented_pause_outlasts_the_consent_that_ended_during_it(client, make, net):
    """Family circumstances paused the Part C clock; the consent ending relabels the hold but
    the circumstances, and the pause, go on until the referral resumes."""
    consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    rid, etag = accepted(client, net, part_c={"identified_on": clock.local_date(start).isoformat()})
    clock.freeze(start + timedelta(days=5))
    move(client, rid, net.as_provider, etag, status="on_hold", reason="family_circumstances",
         note="Baby in hospital.")
    clock.freeze(consent.expires_at + timedelta(days=1))
    seen = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json
    assert (seen["status"], seen["status_reason"]) == ("on_hold", "consent_ended")
    assert seen["part_c"]["timeline_paused_since"] is not None


def test_a_hold_the_receiver_made_meanwhile_is_judged_once_the_row_is_locked(
        app, client, make, net):
    """A look loaded the referral while accepted; before it locked the row, the receiver held
    it knowing the consent had ended. The look leaves that hold as it is."""
    import sqlalchemy as sa

    from referrals import service
    from referrals.models import Referral
    from tests.conftest import _ActorOf

    consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    sent = send(client, net)
    rid = sent.json["id"]
    move(client, rid, net.as_provider, sent.headers["ETag"], status="accepted")
    later = consent.expires_at + timedelta(days=1)
    clock.freeze(later)
    with app.app_context():
        access = service._access(_ActorOf(net.clinic), uuid.UUID(rid), "read")
        assert access.referral.status == "accepted"
        db.session.execute(sa.update(Referral).where(Referral.id == access.referral.id)
                           .values(status="on_hold", status_reason="awaiting_consent",
                                   updated_at=later)
                           .execution_options(synchronize_session=False))  # as another's
        assert service._hold_if_unsupported(access) is False
        assert access.referral.status_reason == "awaiting_consent"
        db.session.rollback()


def test_a_page_of_many_families_loads_their_consents_in_one_statement(app, client, make, net):
    """A page's families' consents load together, not one statement per family (a page of 200
    referrals would send 200 more)."""
    for n in range(6):
        family = make.family(net.clinic, given_name=f"Child{n}")
        make.consent(family, [net.clinic, net.provider], categories=FULL)
        send(client, net, family_id=str(family.id))
    with statements_sent(app) as statements:
        page = client.get("/api/v1/referrals?direction=received", headers=net.as_provider)
    assert len(page.json["items"]) == 6
    assert sum("consent_parties" in s for s, _ in statements) == 1
    with app.app_context():
        # One event for each family the page disclosed.
        assert db.session.query(AuditEvent).filter_by(action="search").count() == 6


def test_each_familys_accounting_names_only_what_a_page_disclosed_about_it(
        app, client, make, net):
    """A page listing two families' referrals: each family's accounting holds its own
    categories and consents, never the other's."""
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=("identity",))
    send(client, net, shared_categories=["identity"], reasons=["other"])
    other_holder = make.organization(name="Other Clinic", type="pediatric_primary_care")
    other = make.family(other_holder, given_name="Yara")
    other_consent = make.consent(other, [other_holder, net.provider], purposes=("referral",),
                                 categories=("identity", "contact", "referral_reason"))
    send(client, net, headers=bearer(make.token(other_holder, lifetime=LONG)),
         family_id=str(other.id))
    page = client.get("/api/v1/referrals?direction=received", headers=net.as_provider)
    assert len(page.json["items"]) == 2
    items = client.get(f"/api/v1/families/{net.family.id}/disclosures",
                       headers=net.as_clinic).json["items"]
    searches = [i for i in items if i["action"] == "search"]
    assert [(i["categories"], i["purpose"]) for i in searches] == [(["identity"], "referral")]
    assert str(other_consent.id) not in searches[0]["consent_ids"]


def test_a_list_page_without_direction_names_the_purpose_of_its_disclosures(client, make,
                                                                              net):
    """The default call, both directions: each disclosure on the page names the purpose the
    engine decided it for (here the family's identity, for `referral`)."""
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=("identity",))
    assert send(client, net, shared_categories=["identity"], reasons=["other"]).status_code \
        == 201
    page = client.get("/api/v1/referrals", headers=net.as_provider)
    assert page.status_code == 200 and len(page.json["items"]) == 1
    searches = [i for i in _disclosures(client, net, net.provider) if i["action"] == "search"]
    assert [(s["categories"], s["purpose"]) for s in searches] == [(["identity"], "referral")]


def test_a_move_is_one_event_and_its_answer_a_read_in_the_accounting(app, client, consented):
    """The move names what it wrote (a rejection's reason and note: the receiver's own
    `service_status` and `coordination_notes`, under no consent); its answer, showing the
    family under consent, is a read the accounting counts, naming only what it showed."""
    sent = send(client, consented)
    rid = sent.json["id"]
    moved = move(client, rid, consented.as_provider, sent.headers["ETag"], status="rejected",
                 reason="at_capacity", note="Full until March.")
    assert moved.status_code == 200
    with app.app_context():
        events = audit_events(request_id=moved.headers["X-Request-ID"])
    assert [(e.action, e.reason, e.purpose, e.categories, e.consent_ids) for e in events] == [
        ("transition", "receiver", None, ["coordination_notes", "service_status"], []),
        ("read", "consent", "referral", ["contact", "identity", "referral_reason"],
         [str(c) for c in sent.json["consent_ids"]])]
    disclosures = client.get(f"/api/v1/families/{consented.family.id}/disclosures",
                             headers=consented.as_clinic).json["items"]
    assert [(d["action"], d["organization_id"]) for d in disclosures] == [
        ("read", str(consented.provider.id))]


def test_a_hold_after_a_resumption_names_the_consent_that_ended(app, client, make, net):
    """A referral resumed under a second consent, after its first was revoked, rests on the
    second: when that one is revoked too, the hold names it, and so does the referral."""
    first = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    rid, _ = accepted(client, net)
    client.post(f"/api/v1/consents/{first.id}/revoke", headers=net.as_clinic,
                json={"reason": "Mother wants to think again."})
    second = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    etag = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).headers["ETag"]
    resumed = move(client, rid, net.as_provider, etag, status="in_progress")
    assert resumed.status_code == 200, resumed.json
    assert resumed.json["consent_ids"] == [str(second.id)]
    client.post(f"/api/v1/consents/{second.id}/revoke", headers=net.as_clinic,
                json={"reason": "Family moved away."})
    with app.app_context():
        holds = audit_events(action="transition", reason="consent_ended", resource_id=rid)
    assert [h.consent_ids for h in holds] == [[str(first.id)], [str(second.id)]]


def _revoke_by_clinic(client, net, consent, reason="The family ended it."):
    answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                         json={"reason": reason, "requested_by": "organization"})
    assert answer.status_code == 200, answer.json
    return answer


def test_a_referral_another_consent_still_covers_rests_on_it_once_its_consent_is_revoked(
        app, client, make, net):
    """Sent under X while Y covers it too: X revoked, the referral stays open and rests on Y
    from then on (both sides are told so, not of X, revoked); Y revoked later, the hold
    names Y, whose end held it, not X (a review)."""
    x = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    y = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    sent = send(client, net)
    assert sent.status_code == 201, sent.json
    rid = sent.json["id"]
    assert sent.json["consent_ids"] == [str(x.id)]

    _revoke_by_clinic(client, net, x, "Replaced.")
    for side in (net.as_provider, net.as_clinic):
        read = client.get(f"/api/v1/referrals/{rid}", headers=side)
        assert (read.json["status"], read.json["consent_ids"]) == ("requested", [str(y.id)])
        assert read.headers["ETag"] != sent.headers["ETag"]  # what it shows changed
    with app.app_context():
        rested = audit_events(action="update", resource_id=rid)
        assert [(e.reason, e.consent_ids, e.organization_id) for e in rested] == [
            ("rests_on_consents_in_force", [str(y.id)], None)]
        assert rested[0].request_path.endswith(f"/consents/{x.id}/revoke")  # in its request

    _revoke_by_clinic(client, net, y, "Withdrawn.")
    with app.app_context():
        holds = [e for e in audit_events(resource_id=rid) if e.reason == "consent_ended"]
    assert [(h.action, h.consent_ids) for h in holds] == [("transition", [str(y.id)])]
    held = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json
    assert (held["status"], held["consent_ids"]) == ("on_hold", [str(y.id)])


def _expiring_then_covering(make, net):
    """The clock frozen at a start: X, full consent expiring two days on, then a second later
    another full consent; (start, X, the other)."""
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    expiring = make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                            expires_in_days=2)
    clock.freeze(start + timedelta(seconds=1))
    covering = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    return start, expiring, covering


def test_a_consent_that_expired_while_another_covers_gives_way_at_the_next_look(
        app, client, make, net):
    """X, the consent a referral was sent under, expires while Y still covers it: the next
    look (a page of the receiver's list) has it rest on Y; when Y is revoked, its hold names
    Y alone."""
    start, x, y = _expiring_then_covering(make, net)
    sent = send(client, net)
    rid = sent.json["id"]
    assert sent.json["consent_ids"] == [str(x.id)]
    clock.freeze(start + timedelta(days=3))

    page = client.get("/api/v1/referrals?direction=received", headers=net.as_provider).json
    assert [(i["id"], i["status"], i["consent_ids"]) for i in page["items"]] == [
        (rid, "requested", [str(y.id)])]
    _revoke_by_clinic(client, net, y)
    with app.app_context():
        holds = audit_events(action="transition", reason="consent_ended", resource_id=rid)
    assert [h.consent_ids for h in holds] == [[str(y.id)]]


def test_a_hold_names_the_revoked_consent_that_covered_after_an_unseen_expiry(
        app, client, make, net):
    """X, the consent the referral rests on, expires; Z, recorded later, covers it from then
    on, unseen (nothing looked at the referral meanwhile). Z revoked, the hold names both:
    X ended, and Z's end is what held it."""
    start, x, z = _expiring_then_covering(make, net)
    rid = send(client, net).json["id"]
    clock.freeze(start + timedelta(days=3))
    _revoke_by_clinic(client, net, z)
    with app.app_context():
        holds = audit_events(action="transition", reason="consent_ended", resource_id=rid)
        assert audit_events(action="update", resource_id=rid) == []
    assert [sorted(h.consent_ids) for h in holds] == [sorted([str(x.id), str(z.id)])]


def test_a_note_leaves_the_etag_a_service_hold_moves_it(client, consented):
    """A note is no move of the referral; the service's hold is, for both sides."""
    rid, etag = accepted(client, consented)
    note = client.post(f"/api/v1/referrals/{rid}/notes", json={"body": "Called twice."},
                       headers=consented.as_provider)
    assert note.status_code == 201
    assert client.get(f"/api/v1/referrals/{rid}", headers=consented.as_clinic) \
        .headers["ETag"] == etag
    clock.freeze(consented.consent.expires_at + timedelta(seconds=1))
    held = client.get(f"/api/v1/referrals/{rid}", headers=consented.as_clinic)
    assert held.json["status"] == "on_hold" and held.headers["ETag"] != etag
    assert client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider) \
        .headers["ETag"] == held.headers["ETag"]


def test_a_list_item_does_not_name_another_referrals_withheld_categories(app, client, make):
    """Each item of a page says what is withheld from it, as a single read of it would: two
    referrals of one family, the first sharing identity and its reasons, the second identity
    only; once the consent for the reasons is revoked, only the first names
    `referral_reason` in `redacted` (the page's items shared one record of decisions per
    family, and the second named it too)."""
    t0 = clock.now().replace(microsecond=0)
    clock.freeze(t0)
    net = network(make)
    reasons = make.consent(net.family, [net.clinic, net.provider],
                           categories=("identity", "referral_reason"))
    make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    first = send(client, net, shared_categories=["identity", "referral_reason"])
    clock.freeze(t0 + timedelta(seconds=1))
    second = send(client, net, shared_categories=["identity"])
    assert (first.status_code, second.status_code) == (201, 201)
    clock.freeze(t0 + timedelta(seconds=2))
    revoked = client.post(f"/api/v1/consents/{reasons.id}/revoke",
                          json={"reason": "The mother asked."}, headers=net.as_clinic)
    assert revoked.status_code == 200
    # Both changed as it was revoked: the first is on hold (its reasons no longer pass), the
    # second rests on the consent still in force.

    single = client.get(f"/api/v1/referrals/{second.json['id']}", headers=net.as_provider).json
    assert single["redacted"] == []
    page = client.get("/api/v1/referrals?direction=received", headers=net.as_provider).json
    items = {item["id"]: item for item in page["items"]}
    assert items.keys() == {first.json["id"], second.json["id"]}
    assert items[first.json["id"]]["status"] == "on_hold"
    assert items[second.json["id"]]["status"] == "requested"
    assert items[first.json["id"]]["redacted"] == ["referral_reason"]
    assert items[second.json["id"]]["redacted"] == single["redacted"]


def test_a_status_page_leaves_out_what_its_own_look_put_on_hold(app, client, consented):
    """Asked for `requested` referrals after their consent expired, the look puts them on
    hold (consent_ended): they no longer match, so the page leaves them out, and a
    later page for `on_hold` finds them (the list route's promise)."""
    rid = send(client, consented).json["id"]
    assert [i["id"] for i in client.get("/api/v1/referrals?status=requested",
                                        headers=consented.as_clinic).json["items"]] == [rid]
    clock.freeze(consented.consent.expires_at + timedelta(minutes=1))

    page = client.get("/api/v1/referrals?status=requested", headers=consented.as_clinic)

    assert page.status_code == 200
    assert page.json["items"] == []
    held = client.get("/api/v1/referrals?status=on_hold", headers=consented.as_clinic).json
    assert [(i["id"], i["status"]) for i in held["items"]] == [(rid, "on_hold")]
