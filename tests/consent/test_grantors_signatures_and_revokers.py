"""Consents as staff record them under time pressure, and as an adversary would: who may
grant as a parent, how long one signature lasts, control characters in free text, who may ask
for a revocation, refusals on the trail, and the grantor's legal authority as a family fact
(from a providers' review, session 10)."""

from datetime import UTC, datetime, timedelta

import pytest

from core import time as clock
from tests.conftest import assert_validation_error, audit_events, bearer

T0 = datetime(2026, 9, 1, 14, 5, 9, tzinfo=UTC)
ALL = ["families:read", "families:write", "consent:read", "consent:write"]
DAY = timedelta(days=1)


def z(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Net:
    """A clinic holding a family, and a provider: each with a token."""

    def __init__(self, make):
        self.clinic = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")
        self.provider = make.organization(name="Riverbend Infant Mental Health")
        self.family = make.family(self.clinic, caregivers=[
            {"given_name": "Ngozi", "family_name": "Okafor", "relationship": "mother",
             "has_legal_authority": True},
            {"given_name": "Ada", "family_name": "Okafor", "relationship": "grandparent",
             "has_legal_authority": False},
            {"given_name": "Fola", "family_name": "Bello", "relationship": "foster_parent",
             "has_legal_authority": True},
            {"given_name": "Bisi", "family_name": "Okafor", "relationship": "grandparent",
             "has_legal_authority": True},
        ])
        self.mother, self.grandmother, self.foster, self.guardian_grandmother = \
            self.family.caregivers
        self.clinic_h = bearer(make.token(self.clinic, ALL, lifetime=10**8))
        self.provider_h = bearer(make.token(self.provider, ALL, lifetime=10**8))
        self.make = make

    @property
    def consents_url(self):
        return f"/api/v1/families/{self.family.id}/consents"

    def body(self, **overrides):
        body = {"grantor": {"caregiver_id": str(self.mother.id), "legal_authority": "parent"},
                "organization_ids": [str(self.clinic.id), str(self.provider.id)],
                "purposes": ["referral"], "categories": ["identity"],
                "expires_at": z(T0 + 30 * DAY), "method": "written",
                "signed_at": z(T0 - timedelta(hours=1)), "explained_in_language": "en",
                "interpreter_used": False, "revocation_rights_explained": True}
        body.update(overrides)
        return body

    def stored(self, client):
        answer = client.get(self.consents_url, headers=self.clinic_h)
        assert answer.status_code == 200
        return answer.json["items"]


@pytest.fixture
def net(make):
    clock.freeze(T0)
    return Net(make)


# -- who may grant --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["foster", "guardian_grandmother"])
def test_a_caregiver_who_is_not_a_parent_cannot_grant_as_parent(client, net, who):
    """DOMAIN.md, "Consent, precisely": only a parent, a legal guardian, or someone a court
    gave that authority may grant, and "a foster parent often lacks it; the placing agency or
    the court holds it". A foster parent (or a grandparent) who does hold legal authority holds
    it as a guardian or by a court's order, never as the child's parent: a consent recording
    `legal_authority: parent` for them states a falsehood about the basis of the consent (the
    one thing an auditor checks first). The caregiver's `relationship` is on the family
    record; the grantor's `legal_authority` must agree with it. The service stores it (201)."""
    caregiver = getattr(net, who)
    answer = client.post(net.consents_url, headers=net.clinic_h, json=net.body(
        grantor={"caregiver_id": str(caregiver.id), "legal_authority": "parent"}))

    assert answer.status_code == 422, answer.json
    assert set(answer.json["errors"]) & {"grantor.legal_authority", "grantor.caregiver_id"}
    assert net.stored(client) == []


# -- how long a signature authorizes sharing -------------------------------------------------


@pytest.mark.parametrize("case", ["signed three years ago, taking effect now",
                                  "signed now, taking effect in five years"])
def test_a_signature_authorizes_sharing_for_at_most_consent_max_days(client, net, case):
    """The issue: "expiry ... beyond the maximum (CONSENT_MAX_DAYS, default 366 days)" is
    refused; README: "The longest a consent may run". The limit is measured from
    `effective_at` only, and `effective_at` is bounded neither above nor (but by `signed_at`,
    itself unbounded below) below, so one signature authorizes sharing for years: a form the
    mother signed in 2023 recorded today as starting now, or a form signed today whose start
    was typed as 2031 (a wrong year under time pressure), runs until 2027 / 2032. What the
    family agreed to is bounded from when it signed: expires_at - signed_at must be at most
    CONSENT_MAX_DAYS too. The service stores both (201)."""
    if case.startswith("signed three"):
        body = net.body(signed_at=z(T0 - 1100 * DAY), effective_at=z(T0),
                        expires_at=z(T0 + 300 * DAY))
    else:
        body = net.body(signed_at=z(T0 - timedelta(hours=1)), effective_at=z(T0 + 1800 * DAY),
                        expires_at=z(T0 + 1830 * DAY))

    answer = client.post(net.consents_url, headers=net.clinic_h, json=body)

    assert answer.status_code == 422, answer.json
    assert net.stored(client) == []


# -- revocation -----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["Mother asked.\x9b31m", "Mother asked.\x80",
                                    "Mother asked.\x9d0;title\x9c"])
def test_a_revocation_reason_with_c1_control_characters_is_422(client, net, make, reason):
    """README, Conventions: free text (a revocation's `reason` among it) keeps its line breaks;
    the field's own check says "Must not contain control characters". U+0080 to U+009F are
    control characters (Unicode category Cc; U+009B is the 8-bit CSI a terminal reading an
    export or a log obeys), yet only C0 controls and DEL are refused: the reason is stored and
    shown to the custodian. Expected 422 naming `reason`, the consent left active."""
    consent = make.consent(net.family, [net.clinic, net.provider])

    answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.clinic_h,
                         json={"reason": reason})

    assert_validation_error(answer, "reason")
    assert client.get(f"/api/v1/consents/{consent.id}",
                      headers=net.clinic_h).json["status"] == "active"


def test_a_revocation_requested_by_a_caregiver_without_legal_authority_is_422(
        client, net, make):
    """DOMAIN.md: only a caregiver with legal authority can grant a consent for the child;
    the issue lists "`caregiver_id` on revocation ... without legal authority" among the bad
    input. A grandmother without legal authority cannot withdraw the mother's consent on the
    child's behalf; recording `requested_by: caregiver` with her id makes the record say the
    family revoked it. (The organization may still revoke on its own account,
    `requested_by: organization`, which stays possible.) The service records it as the
    caregiver's request (200)."""
    consent = make.consent(net.family, [net.clinic, net.provider])

    answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.clinic_h,
                         json={"reason": "The grandmother asked to stop sharing.",
                               "requested_by": "caregiver",
                               "caregiver_id": str(net.grandmother.id)})

    assert_validation_error(answer, "caregiver_id")
    assert client.get(f"/api/v1/consents/{consent.id}",
                      headers=net.clinic_h).json["status"] == "active"


# -- refusals on the trail ------------------------------------------------------------------


@pytest.mark.parametrize("who", ["custodian", "provider"])
def test_a_consent_refused_for_its_grantor_is_a_deny_event_naming_the_family(
        app, client, net, make, who):
    """README, "The audit trail": "every refusal of an authenticated organization is an audit
    event"; the brief: deny events for refusals. A consent refused because its grantor has no
    legal authority is a refusal of the recorder's action about this family, and for a
    provider recording under consent the 422 tells it an identity fact (this caregiver has no
    legal authority: tests/consent/test_recording_races.py calls it "the identity fact the
    check guards"). Nothing is written: no event at all names the attempt."""
    headers = net.clinic_h
    if who == "provider":
        make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
        headers = net.provider_h
    answer = client.post(net.consents_url, headers=headers, json=net.body(
        grantor={"caregiver_id": str(net.grandmother.id), "legal_authority": "legal_guardian"}))
    assert_validation_error(answer, "grantor.caregiver_id")

    with app.app_context():
        refused = [e for e in audit_events(outcome="deny") if e.family_id == net.family.id]
    assert refused, "no deny event names the refused consent"
    assert refused[-1].action == "create"


def test_a_revocation_refused_for_its_caregiver_is_a_deny_event(app, client, net, make):
    """As above, for POST /consents/{id}/revoke: a revocation refused (422, a caregiver of
    another family) leaves no trace on the trail, though the consent and the family are
    known."""
    consent = make.consent(net.family, [net.clinic, net.provider])
    elsewhere = make.family(net.clinic, given_name="Bola")

    answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.clinic_h,
                         json={"reason": "Asked.",
                               "caregiver_id": str(elsewhere.caregivers[0].id)})
    assert_validation_error(answer, "caregiver_id")

    with app.app_context():
        refused = [e for e in audit_events(outcome="deny") if e.family_id == net.family.id]
    assert refused, "no deny event names the refused revocation"
    assert refused[-1].action == "revoke"


# -- what a consent record discloses ---------------------------------------------------------


@pytest.mark.parametrize("state", ["contact only", "revoked"])
def test_a_court_appointed_grantor_is_not_shown_to_a_party_without_consent_for_it(
        client, net, make, state):
    """API.md: `identity` covers caregivers' names...; the family record's
    `has_legal_authority` is `identity` (consent/categories.py), and `child_welfare` covers
    "child protective services involvement, foster care, court". A consent's
    `grantor.legal_authority` says who holds legal authority over the child and, when it is
    `court_appointed`, that a court placed the child: family facts the recorder wrote, as
    `explained_in_language` is. The service withholds the language (`contact`) from a party
    without consent for it, yet shows `court_appointed` to every named party, even one whose
    only consent lets it see `contact` alone, or whose consent was revoked, and says nothing
    of it in `redacted`. Expected: withheld (absent) and named in `redacted`."""
    recorded = client.post(net.consents_url, headers=net.clinic_h, json=net.body(
        grantor={"caregiver_id": str(net.foster.id), "legal_authority": "court_appointed"},
        categories=["contact"]))
    assert recorded.status_code == 201, recorded.json
    consent_id = recorded.json["id"]
    if state == "revoked":
        assert client.post(f"/api/v1/consents/{consent_id}/revoke", headers=net.clinic_h,
                           json={"reason": "Asked."}).status_code == 200

    seen = client.get(f"/api/v1/consents/{consent_id}", headers=net.provider_h)

    assert seen.status_code == 200
    shown = seen.json
    assert shown["grantor"].get("legal_authority") != "court_appointed", shown
    assert {"identity", "child_welfare"} & set(shown["redacted"]), shown["redacted"]


@pytest.mark.parametrize("categories", [("contact",), None])
def test_a_party_without_identity_cannot_probe_caregivers_by_revoking(client, net, categories):
    """A party whose consents let it see none of the family's `identity` (only `contact`, or a
    consent already revoked) revoked again naming one caregiver after another: 200 for one
    with legal authority, 422 "no legal authority" for one without, 422 "not a caregiver" for
    any other id, so it learned who belongs to the family and who holds authority. It names
    no caregiver now, whichever it is, and revokes as before without one."""
    consent = net.make.consent(net.family, [net.clinic, net.provider],
                               categories=categories or ("identity",), revoked=not categories)
    answers = set()
    for caregiver in (net.mother.id, net.grandmother.id, net.family.id):
        answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.provider_h,
                             json={"reason": "Asked.", "caregiver_id": str(caregiver)})
        answers.add((answer.status_code, str(answer.json.get("errors"))))
    assert len(answers) == 1 and answers.pop()[0] == 422

    unnamed = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.provider_h,
                          json={"reason": "Asked."})
    assert unnamed.status_code == 200
    assert unnamed.json["status"] == "revoked"


def test_a_party_that_sees_the_identity_names_the_caregiver_who_asked(client, net):
    consent = net.make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.provider_h,
                         json={"reason": "Asked.", "caregiver_id": str(net.mother.id)})
    assert answer.status_code == 200, answer.json


def test_a_strangers_consent_list_and_decision_name_the_family_for_the_auditors(
        app, client, make):
    """A stranger's look at a family's consents, or question about it, is 404 at once and a
    deny event; the event names the family (an explicit None had overridden the family the
    service had found), so the auditors' family filter finds it."""
    custodian, stranger = make.organization(), make.organization()
    family = make.family(custodian)
    headers = bearer(make.token(stranger))
    assert client.get(f"/api/v1/families/{family.id}/consents",
                      headers=headers).status_code == 404
    assert client.post("/api/v1/consent-decisions", headers=headers, json={
        "family_id": str(family.id), "purpose": "referral",
        "categories": ["identity"]}).status_code == 404
    with app.app_context():
        refused = [(e.action, e.family_id) for e in audit_events(outcome="deny")
                   if e.organization_id == stranger.id]
    assert refused == [("search", family.id), ("decide", family.id)]


# -- what checking a grantor or a revoker tells, accounted ------------------------------------


def _identity_reads(app, net, organization):
    with app.app_context():
        return [(e.categories, e.consent_ids) for e in audit_events(
            action="read", outcome="permit", resource_type="family", family_id=net.family.id,
            organization_id=organization.id)]


@pytest.mark.parametrize("answer", ["recorded", "refused for its expiry"])
def test_a_grantor_checked_for_a_party_is_a_disclosure_whatever_the_answer(
        app, client, net, answer):
    """A party that sees the family's identity under consent records one naming the mother:
    the answer tells it she is this family's caregiver with legal authority, an identity
    fact, whether it is a 201 or a 422 that names only the expiry (a review: only a 422 about
    the grantor was accounted). The custodian's accounting of disclosures lists it."""
    sight = net.make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    expires_at = z(T0 + 30 * DAY) if answer == "recorded" else z(T0 + 400 * DAY)

    posted = client.post(net.consents_url, headers=net.provider_h,
                         json=net.body(expires_at=expires_at))

    assert posted.status_code == (201 if answer == "recorded" else 422), posted.json
    assert _identity_reads(app, net, net.provider) == [(["identity"], [str(sight.id)])]
    disclosed = client.get(f"/api/v1/families/{net.family.id}/disclosures",
                           headers=net.clinic_h).json["items"]
    assert [(d["organization_id"], d["consent_ids"]) for d in disclosed] == \
        [(str(net.provider.id), [str(sight.id)])]


def test_a_grantor_checked_for_the_custodian_discloses_nothing(app, client, net):
    posted = client.post(net.consents_url, headers=net.clinic_h, json=net.body())

    assert posted.status_code == 201, posted.json
    assert _identity_reads(app, net, net.clinic) == []


def test_a_revoker_checked_for_a_party_is_a_disclosure_when_it_is_recorded_too(
        app, client, net):
    """A party names the mother as asking for the revocation: the 200 tells it she holds
    legal authority, as a 422 would have told it she does not."""
    sight = net.make.consent(net.family, [net.clinic, net.provider], categories=("identity",),
                             purposes=("care_coordination",))
    consent = net.make.consent(net.family, [net.clinic, net.provider], categories=("contact",))

    answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.provider_h,
                         json={"reason": "Asked.", "caregiver_id": str(net.mother.id)})

    assert answer.status_code == 200, answer.json
    assert (["identity"], [str(sight.id)]) in _identity_reads(app, net, net.provider)
