"""The trail is exact for auditors: every look names exactly the categories it showed, for
its purpose, on the consents it rested on; `redacted` names exactly what was withheld; every
refusal and replay names its family. From an auditors' review (session 10)."""

from datetime import datetime, timedelta

from core import time as clock
from tests.conftest import audit_events, bearer
from tests.referrals.conftest import FULL, LONG, accepted, move, network, send


def _events_of(app, response, **filters):
    """The audit events the request behind `response` recorded."""
    with app.app_context():
        return audit_events(request_id=response.headers["X-Request-ID"], **filters)


def _accounting(client, net):
    answer = client.get(f"/api/v1/families/{net.family.id}/disclosures?limit=200",
                        headers=net.as_clinic)
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


# -- nothing is accounted as disclosed that was not shown ----------------------------------

def test_a_shared_category_the_referral_holds_nothing_of_is_not_accounted_as_disclosed(
        app, client, make):
    """The clinic shares `health` with the referral (a shareable category) under a consent
    covering it. A referral has no field of that category: the provider's read shows the
    family's identity and the reasons, and nothing about health. DOMAIN.md: the accounting
    of disclosures lists what was *seen*; the brief: categories named exactly as shown.
    The service names `health` in the read's disclosure and in the family's accounting."""
    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.provider],
                           categories=FULL + ("health",))
    sent = send(client, net, shared_categories=["identity", "referral_reason", "health"])
    assert sent.status_code == 201, sent.json

    read = client.get(f"/api/v1/referrals/{sent.json['id']}", headers=net.as_provider)
    assert read.status_code == 200
    shown = read.json
    # Nothing in the answer is health information: the family's identity and the reasons.
    assert shown["reasons"] == ["feeding_concerns", "caregiver_depression"]
    assert set(shown) - {"shared_categories"} == {
        "id", "family_id", "from_organization_id", "to_organization_id", "status", "reasons",
        "reason_detail", "urgency", "consent_ids", "family", "part_c", "sent_at",
        "received_at", "created_at", "updated_at", "redacted"}

    [event] = _events_of(app, read, outcome="permit")
    assert (event.purpose, event.consent_ids) == ("referral", [str(consent.id)])
    assert event.categories == ["identity", "referral_reason"]
    [item] = [i for i in _accounting(client, net) if i["organization_id"] == str(net.provider.id)]
    assert item["categories"] == ["identity", "referral_reason"]


def test_a_head_request_is_refused_and_not_accounted_as_a_disclosure(app, client, make):
    """HEAD on a family record would run the read and send none of it: the accounting
    (DOMAIN.md: who saw a family's information) would list a look nobody saw. The API's reads
    are GETs: 405, naming them."""
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=("identity", "contact"))
    looked = client.head(f"/api/v1/families/{net.family.id}?purpose=referral",
                         headers=net.as_provider)
    assert looked.status_code == 405 and looked.data == b""
    assert "GET" in looked.headers["Allow"] and "HEAD" not in looked.headers["Allow"]
    assert [i for i in _accounting(client, net)
            if i["organization_id"] == str(net.provider.id)] == []
    assert client.get(f"/api/v1/families/{net.family.id}?purpose=referral",
                      headers=net.as_provider).status_code == 200


# -- `redacted` names exactly what was withheld ----------------------------------------------

def _cancelled_part_c_referral(client, make):
    """A Part C referral the provider received (its 45-day clock started: the provider's
    `service_status`), then the clinic cancelled (its own `service_status`: the reason),
    under a consent for `referral` only: neither side may see the other's feedback."""
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=FULL)
    sent = send(client, net, part_c={"identified_on": clock.today().isoformat()})
    rid = sent.json["id"]
    received = move(client, rid, net.as_provider, sent.headers["ETag"], status="received")
    assert received.json["part_c"]["timeline_due_by"] is not None
    cancelled = move(client, rid, net.as_clinic, received.headers["ETag"],
                     status="cancelled", reason="no_longer_needed")
    assert cancelled.status_code == 200, cancelled.json
    return net, rid, cancelled


def test_the_senders_redacted_names_the_receivers_withheld_clock(client, make):
    """API.md: `redacted` lists the categories withheld from the caller's view. The clinic
    sees its own cancellation reason but not the provider's 45-day clock (`service_status`
    the provider authors; the schema: "absent for a referrer no consent lets see it"). Part
    of `service_status` was withheld, yet `redacted` is empty, in the move's answer and in a
    read: the clinic cannot tell the clock exists and was kept from it."""
    net, rid, cancelled = _cancelled_part_c_referral(client, make)
    read = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json
    for answer in (cancelled.json, read):
        assert answer["status_reason"] == "no_longer_needed"
        assert "timeline_due_by" not in answer["part_c"]  # withheld
        assert "service_status" in answer["redacted"], answer["redacted"]


def test_the_receivers_redacted_names_the_senders_withheld_reason(client, make):
    """The provider sees its own clock but not the clinic's cancellation reason (the
    clinic's `service_status`, and no consent for `care_coordination`): `status_reason` is
    absent, yet `redacted` is empty."""
    net, rid, _ = _cancelled_part_c_referral(client, make)
    read = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json
    assert read["part_c"]["timeline_due_by"] is not None
    assert "status_reason" not in read  # withheld
    assert "service_status" in read["redacted"], read["redacted"]


# -- the trail finds every access and refusal by family ------------------------------------

def test_a_replayed_note_is_on_its_familys_trail(app, client, make):
    """A replay shows the note again (the service records it as a `read`). API.md's audit
    event names `family_id`, and auditors query a family's trail with `?family_id=`; the
    replay's event names no family, so that query does not find the look."""
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    rid = send(client, net).json["id"]
    headers = {**net.as_provider, "Idempotency-Key": "review-note-1"}
    first = client.post(f"/api/v1/referrals/{rid}/notes", json={"body": "Booked."},
                        headers=headers)
    again = client.post(f"/api/v1/referrals/{rid}/notes", json={"body": "Booked."},
                        headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    auditor = bearer(make.token(make.organization(name="Privacy Office",
                                                  type="community_other"), ["audit:read"]))
    trail = client.get(f"/api/v1/audit/events?family_id={net.family.id}&limit=200",
                       headers=auditor).json["items"]
    assert again.headers["X-Request-ID"] in {e["request"]["id"] for e in trail}


def test_a_refused_move_is_on_its_familys_trail(app, client, make):
    """Every refusal of an authenticated actor is a `deny` event (README, "The audit
    trail"); a refused move on a family's referral names the family as the service's other
    refusals of that route do (428, 412, 403 wrong side, 404 all do). A 409
    `invalid-transition` names none: `?family_id=&outcome=deny` misses it."""
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    sent = send(client, net)
    refused = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                   status="completed", outcome="goals_met")
    assert refused.status_code == 409
    [deny] = _events_of(app, refused)
    assert deny.outcome == "deny"
    assert deny.family_id == net.family.id


# -- consent records: the facts their recorder wrote ---------------------------------------

def test_a_consent_s_facts_pass_from_its_recorder_only_under_a_consent_naming_the_recorder(
        app, client, make):
    """Early intervention records a consent (README: "its recorder sees the family facts it
    wrote into it (the language it was explained in, an interpreter), other parties only
    under consent"; and "anyone else ... sees a category only while a consent in force names
    both organizations"). No consent names Early On and the provider for `contact`; the
    provider's consent with the clinic does. The provider is shown the language Early On
    recorded, and the disclosure names a consent that does not name Early On, the author:
    the consent relied on does not let that information pass (DOMAIN.md, "Consent,
    precisely")."""
    net = network(make)
    early_on = make.organization(name="Early On", type="early_intervention")
    make.consent(net.family, [net.clinic, early_on], categories=("identity",))
    make.consent(net.family, [net.clinic, net.provider], categories=("identity", "contact"))
    recorded = make.consent(net.family, [early_on, net.provider], purposes=("referral",),
                            categories=("identity",), recorder=early_on)

    read = client.get(f"/api/v1/consents/{recorded.id}", headers=net.as_provider)
    assert read.status_code == 200
    assert "explained_in_language" not in read.json, (read.json["redacted"],
                                                      _events_of(app, read)[0].consent_ids)
    assert read.json["redacted"] == ["contact"]


def test_the_custodian_sees_the_facts_another_organization_wrote_into_a_consent_only_under_consent(
        app, client, make):
    """The engine's rule holds for the custodian too: what another organization wrote (here
    the language Early On explained a consent in) passes to it only under a consent naming
    both. The record itself, a consent of its family, the custodian always sees."""
    net = network(make)
    early_on = make.organization(name="Early On", type="early_intervention")
    make.consent(net.family, [net.clinic, early_on], categories=("identity",))
    recorded = make.consent(net.family, [early_on, net.provider], purposes=("referral",),
                            categories=("identity",), recorder=early_on)
    read = client.get(f"/api/v1/consents/{recorded.id}", headers=net.as_clinic)
    assert read.status_code == 200
    assert "explained_in_language" not in read.json and read.json["redacted"] == ["contact"]

    shared = make.consent(net.family, [net.clinic, early_on], purposes=("treatment",),
                          categories=("contact",))
    read = client.get(f"/api/v1/consents/{recorded.id}", headers=net.as_clinic)
    assert read.json["explained_in_language"] == "es" and read.json["redacted"] == []
    shown = sorted((e.purpose, e.categories, e.consent_ids) for e in _events_of(app, read))
    assert ("treatment", ["contact"], [str(shared.id)]) in shown


# -- a relay and an expiry, look by look ------------------------------------------------------

def _permits(app, response):
    with app.app_context():
        return sorted((e.purpose, tuple(e.categories), tuple(e.consent_ids))
                      for e in audit_events(request_id=response.headers["X-Request-ID"],
                                            outcome="permit")
                      if e.reason in ("consent", "partial_consent"))


def test_a_relay_every_look_is_one_disclosure_per_purpose_naming_its_own_consents(
        app, client, make):
    """Early On relays the clinic's family to the provider: the family record passes under
    the three-party consent, the feedback and notes under Early On's own with the provider.
    Every look by a non-custodian lands one event per purpose, naming that purpose's
    categories and consents only."""
    net = network(make)
    early_on = make.organization(name="Early On", type="early_intervention")
    as_early_on = bearer(make.token(early_on, lifetime=LONG))
    sight = make.consent(net.family, [net.clinic, early_on], categories=("identity", "contact"))
    relay = make.consent(net.family, [net.clinic, early_on, net.provider],
                         purposes=("referral",),
                         categories=("identity", "contact", "referral_reason"))
    feedback = make.consent(net.family, [early_on, net.provider],
                            purposes=("care_coordination",),
                            categories=("service_status", "coordination_notes"))
    s, r, f = str(sight.id), str(relay.id), str(feedback.id)
    sent = send(client, net, headers=as_early_on)
    assert _permits(app, sent) == [("referral", ("contact", "identity"), (s,))]
    rid = sent.json["id"]
    moved = move(client, rid, net.as_provider, sent.headers["ETag"], status="accepted")
    moved = move(client, rid, net.as_provider, moved.headers["ETag"], status="in_progress",
                 business_status="scheduled", note="Booked.")
    assert _permits(app, moved) == [
        ("referral", ("contact", "identity", "referral_reason"), (r,))]
    read = client.get(f"/api/v1/referrals/{rid}", headers=as_early_on)
    assert read.json["business_status"] == "scheduled"
    assert _permits(app, read) == [("care_coordination", ("service_status",), (f,)),
                                   ("referral", ("contact", "identity"), (s,))]
    timeline = client.get(f"/api/v1/referrals/{rid}/events", headers=as_early_on)
    assert _permits(app, timeline) == [
        ("care_coordination", ("coordination_notes", "service_status"), (f,))]
    page = client.get("/api/v1/referrals", headers=as_early_on)
    assert _permits(app, page) == _permits(app, read)


def test_a_consent_expiring_between_two_pages_stops_the_disclosures_at_once(
        app, client, make):
    t0 = clock.now().replace(microsecond=0)
    clock.freeze(t0)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider],
                 categories=("identity", "contact", "referral_reason", "coordination_notes"),
                 expires_at=t0 + timedelta(hours=1))
    rid = send(client, net).json["id"]
    for n in range(3):
        client.post(f"/api/v1/referrals/{rid}/notes", json={"body": f"note {n}"},
                    headers=net.as_clinic)
    first = client.get(f"/api/v1/referrals/{rid}/notes?limit=2", headers=net.as_provider)
    assert len(_permits(app, first)) == 1
    clock.freeze(t0 + timedelta(hours=2))
    second = client.get(f"/api/v1/referrals/{rid}/notes?limit=2"
                        f"&cursor={first.json['next_cursor']}", headers=net.as_provider)
    assert second.status_code == 200
    assert second.json["items"] == []  # the clinic's last note, no longer the provider's to see
    assert _permits(app, second) == []


# -- a refusal that tells a fact of the family is a disclosure -------------------------------

def _told(app, response, net, consent, purpose):
    """The refusal's two events: its deny, and the read of identity it told under consent,
    which the family's accounting lists."""
    events = _events_of(app, response)
    assert sorted(e.outcome for e in events) == ["deny", "permit"]
    [told] = [e for e in events if e.outcome == "permit"]
    assert (told.action, told.organization_id, told.family_id) == (
        "read", net.provider.id, net.family.id)
    assert (told.purpose, told.categories, told.consent_ids) == (
        purpose, ["identity"], [str(consent.id)])
    return told


def test_a_grantor_refused_for_authority_is_accounted_to_the_recorder(app, client, make):
    """The provider, which sees the family's identity for care coordination, records a consent
    the grandmother gives: 422, she has no legal authority. That answer told the provider an
    identity fact of the family: it is a disclosure, in the accounting."""
    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.provider],
                           purposes=("care_coordination",), categories=("identity",))
    grandmother = next(c for c in net.family.caregivers if not c.has_legal_authority)
    body = {"grantor": {"caregiver_id": str(grandmother.id), "legal_authority": "parent"},
            "organization_ids": [str(net.clinic.id), str(net.provider.id)],
            "purposes": ["referral"], "categories": ["identity"],
            "expires_at": (clock.now() + timedelta(days=30)).isoformat(), "method": "written",
            "signed_at": clock.now().isoformat(), "explained_in_language": "en",
            "interpreter_used": False, "revocation_rights_explained": True}

    refused = client.post(f"/api/v1/families/{net.family.id}/consents", json=body,
                          headers=net.as_provider)

    assert refused.status_code == 422
    assert "grantor.caregiver_id" in refused.json["errors"]
    told = _told(app, refused, net, consent, "care_coordination")
    assert [(i["organization_id"], i["categories"], i["purpose"]) for i in _accounting(client, net)
            if i["seq"] == told.seq] == [(str(net.provider.id), ["identity"], "care_coordination")]


def test_a_revocation_naming_a_caregiver_without_authority_is_accounted(app, client, make):
    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.provider],
                           purposes=("care_coordination",), categories=("identity",))
    grandmother = next(c for c in net.family.caregivers if not c.has_legal_authority)

    refused = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_provider,
                          json={"requested_by": "caregiver", "caregiver_id": str(grandmother.id),
                                "reason": "Wants to stop sharing."})

    assert refused.status_code == 422
    _told(app, refused, net, consent, "care_coordination")


def test_a_revocation_naming_the_mother_is_accounted_within_the_consents_life(
        app, client, make):
    """The check of the caregiver a revocation names tells the provider, by the 200, that
    she has legal authority: a disclosure under the consent it revokes, made before the
    revocation takes effect, and so on the trail before it and dated no later (it came
    after, dated after `revoked_at`: a disclosure under a revoked consent, a review)."""
    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.provider],
                           purposes=("care_coordination",), categories=("identity",))
    mother = next(c for c in net.family.caregivers if c.has_legal_authority)

    revoked = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_provider,
                          json={"requested_by": "caregiver", "caregiver_id": str(mother.id),
                                "reason": "Wants to stop sharing."})

    assert revoked.status_code == 200, revoked.json
    [revocation, told] = sorted(_events_of(app, revoked), key=lambda e: e.action != "revoke")
    assert (told.action, told.organization_id, told.purpose, told.categories,
            told.consent_ids) == ("read", net.provider.id, "care_coordination", ["identity"],
                                  [str(consent.id)])
    assert told.seq < revocation.seq
    assert told.recorded_at <= datetime.fromisoformat(revoked.json["revoked_at"])


def test_a_part_c_date_before_the_birth_is_checked_under_the_referrals_purpose(
        app, client, make):
    """Whether a Part C date lies before the birth is told only to a sender that sees the
    birth date for the referral, and accounted; one that sees it for another purpose only
    keeps the draft as sent (the route's purpose is `referral`: API.md)."""
    net = network(make)
    before_birth = (net.family.child_birth_date - timedelta(days=1)).isoformat()
    other_purpose = make.consent(net.family, [net.clinic, net.provider],
                                 purposes=("care_coordination",), categories=("identity",))
    draft = dict(status="draft", to_organization_id=str(net.stranger.id),
                 shared_categories=["identity"], part_c={"identified_on": before_birth})

    kept = send(client, net, headers=net.as_provider, **draft)
    assert kept.status_code == 201, kept.json
    assert kept.json["part_c"]["identified_on"] == before_birth

    for_referral = make.consent(net.family, [net.clinic, net.provider],
                                purposes=("referral",), categories=("identity",))
    refused = send(client, net, headers=net.as_provider, **draft)
    assert refused.status_code == 422
    assert set(refused.json["errors"]) == {"part_c.identified_on"}
    _told(app, refused, net, for_referral, "referral")
    assert other_purpose.id != for_referral.id


# -- every look that listed a family names it ------------------------------------------------

def test_a_list_page_names_every_family_it_listed(app, client, make):
    """A page of the clinic's sent referrals: one family's shows the provider's feedback
    under consent (a disclosure, in that family's accounting), the other's shows nothing the
    clinic did not write itself. That one is named by the page's look event, so an auditor
    following it finds the look; and its accounting stays empty (nothing left anyone)."""
    net = network(make)
    other = make.family(net.clinic, given_name="Kofi")
    for family in (net.family, other):
        make.consent(family, [net.clinic, net.provider], categories=FULL)
    rid, etag = accepted(client, net)
    moved = move(client, rid, net.as_provider, etag, status="in_progress",
                 business_status="scheduled")
    assert moved.status_code == 200, moved.json
    assert send(client, net, family_id=str(other.id)).status_code == 201

    page = client.get("/api/v1/referrals?direction=sent", headers=net.as_clinic)

    assert page.status_code == 200 and len(page.json["items"]) == 2
    events = _events_of(app, page)
    assert sorted((e.reason, e.family_id, e.family_ids) for e in events) == sorted([
        ("consent", net.family.id, []), ("party", None, [str(other.id)])])
    auditor = make.token(make.organization(name="Privacy Office", type="community_other"),
                         ["audit:read"])
    found = client.get(f"/api/v1/audit/events?family_id={other.id}&action=search",
                       headers=bearer(auditor)).json["items"]
    assert [e["request"]["id"] for e in found] == [page.headers["X-Request-ID"]]
    assert client.get(f"/api/v1/families/{other.id}/disclosures",
                      headers=net.as_clinic).json["items"] == []


def test_the_custodians_list_of_its_families_names_them(app, client, make):
    net = network(make)
    other = make.family(net.clinic, given_name="Kofi")
    page = client.get("/api/v1/families", headers=net.as_clinic)
    assert page.status_code == 200
    [event] = _events_of(app, page)
    assert (event.action, event.reason) == ("search", "custodian")
    assert sorted(event.family_ids) == sorted([str(net.family.id), str(other.id)])
