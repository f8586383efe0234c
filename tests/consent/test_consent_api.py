"""Consents through HTTP, as partner agencies record, read, revoke and ask about them: the
contract's shape, every refusal of an invalid consent (and nothing stored), the derived status,
who may read what, revocation taking effect at once, the absence of any way to edit a consent,
and the consent engine's decisions, each of them recorded in the audit trail."""

import threading
import time
import uuid
from collections import namedtuple
from datetime import UTC, datetime, timedelta

import pytest

import consent.service
import families.service
from auth.scopes import SCOPES
from core import time as clock
from tests.conftest import (
    Factory,
    assert_problem,
    assert_validation_error,
    audit_events,
    bearer,
)

CONTRACT_KEYS = {"id", "family_id", "grantor", "organization_ids", "purposes", "categories",
                 "effective_at", "expires_at", "method", "signed_at", "explained_in_language",
                 "interpreter_used", "revocation_rights_explained",
                 "recorded_by_organization_id", "status", "revoked_at", "revocation_reason"}
DECISION_KEYS = {"decision", "permitted_categories", "consent_ids", "reason"}
T0 = datetime(2026, 9, 1, 14, 5, 9, 123456, tzinfo=UTC)
ALL = ["families:read", "families:write", "consent:read", "consent:write"]
DAY = timedelta(days=1)
#: Long enough to outlive every clock move in these tests.
LIFETIME = 800 * 86400

Party = namedtuple("Party", "org headers")


# -- helpers --------------------------------------------------------------------------------------






def rfc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def instant(text: str) -> datetime:
    assert text.endswith("Z"), text  # RFC 3339 in UTC
    return datetime.fromisoformat(text)


@pytest.fixture
def agency(make):
    """agency(name, scopes=ALL) -> Party(organization, headers with its own bearer token)."""

    def build(name, type="imh_provider", scopes=ALL):
        organization = make.organization(name=name, type=type)
        return Party(organization, bearer(make.token(organization, scopes, lifetime=LIFETIME)))

    return build


@pytest.fixture
def custodian(agency):
    return agency("Lakeshore Pediatrics", type="pediatric_primary_care")


@pytest.fixture
def partner(agency):
    return agency("Riverbend Infant Mental Health")


@pytest.fixture
def stranger(agency):
    return agency("Wayne County Child Welfare", type="child_welfare")


@pytest.fixture
def family(make, custodian):
    """Held by the custodian: a mother with legal authority, a grandmother without."""
    return make.family(custodian.org)


def mother(family):
    return family.caregivers[0]


def grandmother(family):
    return family.caregivers[1]


def consent_body(family, parties, *, start=None, **overrides) -> dict:
    """A complete, valid consent naming `parties` (organizations), signed an hour ago."""
    signed = start or clock.now() - timedelta(hours=1)
    body = {
        "grantor": {"caregiver_id": str(mother(family).id), "legal_authority": "parent"},
        "organization_ids": [str(p.id) for p in parties],
        "purposes": ["referral", "care_coordination"],
        "categories": ["identity", "contact", "referral_reason", "service_status"],
        "effective_at": rfc(signed),
        "expires_at": rfc(signed + 180 * DAY),
        "method": "electronic_signature",
        "signed_at": rfc(signed),
        "explained_in_language": "es",
        "interpreter_used": True,
        "revocation_rights_explained": True,
    }
    body.update(overrides)
    return body


def consents_url(family_id) -> str:
    return f"/api/v1/families/{family_id}/consents"


def consent_url(consent_id) -> str:
    return f"/api/v1/consents/{consent_id}"


def record(client, who: Party, family_id, body):
    return client.post(consents_url(family_id), json=body, headers=who.headers)


def listed(client, who: Party, family_id) -> list[dict]:
    response = client.get(consents_url(family_id), headers=who.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json.keys() == {"items", "next_cursor"}
    return response.json["items"]


def status_of(client, who: Party, consent_id) -> str:
    response = client.get(consent_url(consent_id), headers=who.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["status"]


def decide(client, who: Party, family_id, purpose, categories):
    return client.post("/api/v1/consent-decisions", headers=who.headers,
                       json={"family_id": str(family_id), "purpose": purpose,
                             "categories": categories})


# -- POST /api/v1/families/{id}/consents ---------------------------------------------------------


def test_recording_a_consent_answers_201_with_the_contract_shape(
        client, custodian, partner, family):
    body = consent_body(family, [partner.org, custodian.org],
                        explained_in_language="ig", interpreter_used=False)

    response = record(client, custodian, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    consent = response.json
    assert consent.keys() >= CONTRACT_KEYS, CONTRACT_KEYS - consent.keys()
    assert str(uuid.UUID(consent["id"])) == consent["id"]
    assert response.headers["Location"] == f"/api/v1/consents/{consent['id']}"
    assert consent["family_id"] == str(family.id)
    assert consent["grantor"] == {"caregiver_id": str(mother(family).id),
                                  "legal_authority": "parent"}
    # In the order given, the recorder second.
    assert consent["organization_ids"] == [str(partner.org.id), str(custodian.org.id)]
    assert consent["purposes"] == body["purposes"]
    assert consent["categories"] == body["categories"]
    for field in ("effective_at", "expires_at", "signed_at"):
        assert instant(consent[field]) == instant(body[field]), field
    assert consent["method"] == "electronic_signature"
    assert consent["explained_in_language"] == "ig"
    assert consent["interpreter_used"] is False
    assert consent["revocation_rights_explained"] is True
    assert consent["recorded_by_organization_id"] == str(custodian.org.id)
    assert consent["status"] == "active"
    assert consent["revoked_at"] is None
    assert consent["revocation_reason"] is None

    # It reads back the same, by the recorder and by the other party.
    for who in (custodian, partner):
        again = client.get(consent_url(consent["id"]), headers=who.headers)
        assert again.status_code == 200
        assert again.json == consent
    assert [c["id"] for c in listed(client, custodian, family.id)] == [consent["id"]]


def test_times_with_offsets_are_stored_as_the_same_instants_in_utc(
        client, custodian, partner, family):
    signed = clock.now().replace(microsecond=0) - timedelta(hours=2)
    eastern = signed.astimezone(UTC).replace(tzinfo=None)
    offset = "-05:00"
    as_eastern = (eastern - timedelta(hours=5)).isoformat() + offset
    body = consent_body(family, [custodian.org, partner.org], signed_at=as_eastern,
                        effective_at=as_eastern, expires_at=rfc(signed + 30 * DAY))

    response = record(client, custodian, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert instant(response.json["signed_at"]) == signed
    assert instant(response.json["effective_at"]) == signed


def test_effective_at_defaults_to_now(client, custodian, partner, family):
    clock.freeze(T0)
    body = consent_body(family, [custodian.org, partner.org])
    del body["effective_at"]

    response = record(client, custodian, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert instant(response.json["effective_at"]) == T0
    assert response.json["status"] == "active"


def test_a_party_that_sees_the_family_records_a_consent_with_a_third_organization(
        client, make, custodian, partner, stranger, family):
    make.consent(family, [custodian.org, partner.org])
    body = consent_body(family, [partner.org, stranger.org], categories=["identity"])

    response = record(client, partner, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["recorded_by_organization_id"] == str(partner.org.id)
    # The custodian reads it although it is not a party.
    read = client.get(consent_url(response.json["id"]), headers=custodian.headers)
    assert read.status_code == 200
    assert read.json == response.json


def test_the_recorder_reads_back_the_family_facts_it_wrote(
        client, make, custodian, partner, stranger, family):
    """The author sees what it wrote: a recorder whose own consents do not let the family's
    `contact` pass still reads back the facts it recorded, as its 201 showed them."""
    make.consent(family, [custodian.org, partner.org], categories=("identity",))
    body = consent_body(family, [partner.org, stranger.org], categories=["identity"],
                        explained_in_language="ig")
    recorded = record(client, partner, family.id, body)
    assert recorded.status_code == 201, recorded.get_data(as_text=True)
    assert (recorded.json["explained_in_language"], recorded.json["redacted"]) == ("ig", [])

    again = client.get(consent_url(recorded.json["id"]), headers=partner.headers)

    assert again.status_code == 200
    assert again.headers["ETag"] == recorded.headers["ETag"]
    assert again.json == recorded.json
    [listed_again] = [c for c in listed(client, partner, family.id)
                      if c["id"] == recorded.json["id"]]
    assert listed_again == recorded.json
    # The other party, whose consents do not let `contact` pass, does not see them.
    seen = client.get(consent_url(recorded.json["id"]), headers=stranger.headers).json
    assert seen["redacted"] == ["contact"] and "explained_in_language" not in seen


def test_the_longest_consent_is_366_days(client, custodian, partner, family):
    start = clock.now() - timedelta(hours=1)
    body = consent_body(family, [custodian.org, partner.org], start=start,
                        expires_at=rfc(start + 366 * DAY))

    response = record(client, custodian, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)


def test_signed_at_within_the_tolerated_clock_skew_is_accepted(
        client, custodian, partner, family):
    clock.freeze(T0)
    signed = T0 + timedelta(minutes=4)
    body = consent_body(family, [custodian.org, partner.org], start=signed)

    response = record(client, custodian, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["status"] == "pending"


def _other_family_caregiver(ctx):
    return str(mother(ctx["elsewhere"]).id)


#: (case, changes to the body given the context, the field path named in `errors`).
#: The context holds the organizations and `elsewhere`, another family of the same custodian.
REFUSALS = [
    ("grantor not a caregiver",
     lambda c: {"grantor": {"caregiver_id": str(uuid.uuid4()), "legal_authority": "parent"}},
     "grantor.caregiver_id"),
    ("grantor a caregiver of another family",
     lambda c: {"grantor": {"caregiver_id": _other_family_caregiver(c),
                            "legal_authority": "parent"}},
     "grantor.caregiver_id"),
    ("grantor without legal authority",
     lambda c: {"grantor": {"caregiver_id": str(grandmother(c["family"]).id),
                            "legal_authority": "legal_guardian"}},
     "grantor.caregiver_id"),
    ("grantor legal authority unknown",
     lambda c: {"grantor": {"caregiver_id": str(mother(c["family"]).id),
                            "legal_authority": "aunt"}},
     "grantor.legal_authority"),
    ("grantor missing", lambda c: {"grantor": None}, "grantor"),
    ("unknown organization",
     lambda c: {"organization_ids": [str(c["custodian"].id), str(uuid.uuid4())]},
     "organization_ids"),
    ("a single party", lambda c: {"organization_ids": [str(c["custodian"].id)]},
     "organization_ids"),
    ("no parties", lambda c: {"organization_ids": []}, "organization_ids"),
    ("duplicate parties",
     lambda c: {"organization_ids": [str(c["custodian"].id), str(c["partner"].id),
                                     str(c["partner"].id)]},
     "organization_ids"),
    ("duplicate parties spelled differently",
     lambda c: {"organization_ids": [str(c["custodian"].id), str(c["partner"].id),
                                     str(c["partner"].id).upper()]},
     "organization_ids"),
    ("recorder not among the parties",
     lambda c: {"organization_ids": [str(c["partner"].id), str(c["stranger"].id)]},
     "organization_ids"),
    ("expires_at before effective_at",
     lambda c: {"expires_at": rfc(c["start"] - DAY)}, "expires_at"),
    ("expires_at equal to effective_at",
     lambda c: {"expires_at": rfc(c["start"])}, "expires_at"),
    ("expires_at more than 366 days later",
     lambda c: {"expires_at": rfc(c["start"] + 366 * DAY + timedelta(seconds=1))},
     "expires_at"),
    ("expires_at missing", lambda c: {"expires_at": None}, "expires_at"),
    # Signed and started a year ago, ended a minute ago: recorded, it would permit nothing.
    ("expires_at already past",
     lambda c: {"signed_at": rfc(c["now"] - 300 * DAY), "effective_at": rfc(c["now"] - 300 * DAY),
                "expires_at": rfc(c["now"] - timedelta(minutes=1))}, "expires_at"),
    ("expires_at the instant of recording",
     lambda c: {"expires_at": rfc(c["now"])}, "expires_at"),
    ("effective_at before signed_at",
     lambda c: {"effective_at": rfc(c["start"] - timedelta(minutes=1))}, "effective_at"),
    ("signed_at in the future",
     lambda c: {"signed_at": rfc(c["now"] + DAY), "effective_at": rfc(c["now"] + 2 * DAY),
                "expires_at": rfc(c["now"] + 30 * DAY)},
     "signed_at"),
    ("signed_at beyond the tolerated clock skew",
     lambda c: {"signed_at": rfc(c["now"] + timedelta(minutes=6)),
                "effective_at": rfc(c["now"] + timedelta(minutes=6))},
     "signed_at"),
    ("signed_at without a time zone",
     lambda c: {"signed_at": rfc(c["start"]).rstrip("Z")}, "signed_at"),
    ("signed_at not a time", lambda c: {"signed_at": "yesterday"}, "signed_at"),
    ("unknown purpose", lambda c: {"purposes": ["referral", "marketing"]}, "purposes.1"),
    ("no purposes", lambda c: {"purposes": []}, "purposes"),
    ("purpose twice", lambda c: {"purposes": ["referral", "referral"]}, "purposes"),
    ("unknown category", lambda c: {"categories": ["identity", "finances"]}, "categories.1"),
    ("no categories", lambda c: {"categories": []}, "categories"),
    ("revocation rights not explained",
     lambda c: {"revocation_rights_explained": False}, "revocation_rights_explained"),
    ("revocation rights explained as a string",
     lambda c: {"revocation_rights_explained": "true"}, "revocation_rights_explained"),
    ("missing method", lambda c: {"method": None}, "method"),
    ("unknown method", lambda c: {"method": "handshake"}, "method"),
    ("explained_in_language not a tag",
     lambda c: {"explained_in_language": "not a tag"}, "explained_in_language"),
    ("interpreter_used missing", lambda c: {"interpreter_used": None}, "interpreter_used"),
    ("unknown field", lambda c: {"witness": "J. Doe"}, "witness"),
    ("unknown grantor field",
     lambda c: {"grantor": {"caregiver_id": str(mother(c["family"]).id),
                            "legal_authority": "parent", "signature": "N.O."}},
     "grantor.signature"),
]


@pytest.mark.parametrize(("change", "path"), [case[1:] for case in REFUSALS],
                         ids=[case[0] for case in REFUSALS])
def test_an_invalid_consent_is_422_naming_the_field_and_nothing_is_stored(
        client, make, custodian, partner, stranger, family, change, path):
    clock.freeze(T0)
    start = T0 - timedelta(hours=1)
    context = {"family": family, "custodian": custodian.org, "partner": partner.org,
               "stranger": stranger.org, "start": start, "now": T0,
               "elsewhere": make.family(custodian.org, given_name="Bola")}
    body = consent_body(family, [custodian.org, partner.org], start=start)
    for field, value in change(context).items():
        if value is None:
            del body[field]
        else:
            body[field] = value

    response = record(client, custodian, family.id, body)

    assert_validation_error(response, path)
    assert listed(client, custodian, family.id) == []
    assert listed(client, custodian, context["elsewhere"].id) == []
    # Nor does the would-be party see anything of the family.
    assert_problem(client.get(f"/api/v1/families/{family.id}", headers=partner.headers),
                   404, "not-found")


def test_every_invalid_field_is_named_at_once(client, custodian, partner, family):
    body = consent_body(family, [custodian.org, partner.org],
                        grantor={"caregiver_id": str(grandmother(family).id),
                                 "legal_authority": "parent"},
                        organization_ids=[str(partner.org.id), str(uuid.uuid4())])
    body["expires_at"] = rfc(clock.now() + 400 * DAY)

    response = record(client, custodian, family.id, body)

    assert_validation_error(response, "grantor.caregiver_id", "organization_ids", "expires_at")
    assert listed(client, custodian, family.id) == []


@pytest.mark.parametrize("who", ["stranger", "revoked party", "expired party", "pending party",
                                 "party without identity"])
def test_a_consent_for_a_family_the_caller_cannot_see_is_404(
        client, make, custodian, partner, stranger, family, who):
    """Recording takes the family's `identity`: who may grant a consent is an identity fact,
    so a caller that may not see it learns nothing, as if the family did not exist."""
    caller = stranger
    if who != "stranger":
        caller = partner
        if who == "party without identity":
            make.consent(family, [custodian.org, partner.org], categories=("contact",))
            seen = client.get(f"/api/v1/families/{family.id}", headers=partner.headers)
            assert seen.json["redacted"] == ["identity"]
        elif who == "revoked party":
            make.consent(family, [custodian.org, partner.org], revoked=True)
        elif who == "expired party":
            make.consent(family, [custodian.org, partner.org],
                         effective_at=clock.now() - 30 * DAY, expires_in_days=10)
        else:
            make.consent(family, [custodian.org, partner.org],
                         effective_at=clock.now() + DAY)
    before = listed(client, custodian, family.id)
    body = consent_body(family, [caller.org, custodian.org])

    hidden = record(client, caller, family.id, body)
    unknown = record(client, caller, uuid.uuid4(), body)

    hidden_body = assert_problem(hidden, 404, "not-found")
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert (hidden_body["title"], hidden_body["detail"]) == \
        (unknown_body["title"], unknown_body["detail"])
    assert listed(client, custodian, family.id) == before

    # Nor do the family's caregivers show through: the grandmother, who may not consent, and
    # a caregiver of no family get the same 404, not a 422 telling them apart.
    for caregiver_id in (str(grandmother(family).id), str(uuid.uuid4())):
        probe = body | {"grantor": {"caregiver_id": caregiver_id, "legal_authority": "parent"}}
        assert assert_problem(record(client, caller, family.id, probe), 404,
                              "not-found")["detail"] == hidden_body["detail"]
    assert listed(client, custodian, family.id) == before


@pytest.mark.parametrize("retry", ["same body", "different body"])
def test_a_retry_with_the_same_idempotency_key(client, custodian, partner, family, retry):
    clock.freeze(T0)
    keyed = Party(custodian.org, custodian.headers | {"Idempotency-Key": "consent-0042"})
    body = consent_body(family, [custodian.org, partner.org])
    first = record(client, keyed, family.id, body)
    assert first.status_code == 201

    if retry == "same body":
        again = record(client, keyed, family.id, body)
        assert again.status_code == 201
        assert again.json == first.json
    else:
        again = record(client, keyed, family.id, body | {"categories": ["identity"]})
        assert_problem(again, 422, "idempotency-key-reused")
    assert [c["id"] for c in listed(client, custodian, family.id)] == [first.json["id"]]


# -- status --------------------------------------------------------------------------------------


def test_a_consent_taking_effect_later_is_pending_then_active_then_expired(
        client, custodian, partner, family):
    clock.freeze(T0)
    start = T0 + 2 * DAY
    body = consent_body(family, [custodian.org, partner.org],
                        signed_at=rfc(T0 - timedelta(hours=1)), effective_at=rfc(start),
                        expires_at=rfc(start + 10 * DAY))

    response = record(client, custodian, family.id, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    consent_id = response.json["id"]
    assert response.json["status"] == "pending"
    for at, status in [(start - timedelta(microseconds=1), "pending"),
                       (start, "active"),
                       (start + 10 * DAY - timedelta(microseconds=1), "active"),
                       (start + 10 * DAY, "expired"),
                       (start + 100 * DAY, "expired")]:
        clock.freeze(at)
        assert status_of(client, partner, consent_id) == status, at
        assert [c["status"] for c in listed(client, custodian, family.id)] == [status]


@pytest.mark.parametrize(("build", "status"), [
    ({"effective_at": T0 + DAY}, "pending"),
    ({"effective_at": T0 - DAY}, "active"),
    ({"effective_at": T0 - 20 * DAY, "expires_in_days": 10}, "expired"),
    ({"effective_at": T0 - DAY, "revoked": True}, "revoked"),
    ({"effective_at": T0 - 20 * DAY, "expires_in_days": 10, "revoked": True}, "revoked"),
])
def test_status_is_derived_from_the_clock(client, make, custodian, partner, family,
                                          build, status):
    clock.freeze(T0)
    consent = make.consent(family, [custodian.org, partner.org], **build)

    assert status_of(client, custodian, consent.id) == status
    assert status_of(client, partner, consent.id) == status


# -- GET /api/v1/consents/{id} --------------------------------------------------------------------


def test_parties_and_the_custodian_read_a_consent_and_a_stranger_gets_404_like_unknown(
        client, make, agency, custodian, partner, stranger, family):
    third = agency("Third Early Intervention", type="early_intervention")
    consent = make.consent(family, [partner.org, third.org], recorder=partner.org)

    for who in (partner, third, custodian):
        response = client.get(consent_url(consent.id), headers=who.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.json["id"] == str(consent.id)
        assert response.json["organization_ids"] == [str(partner.org.id), str(third.org.id)]

    hidden = client.get(consent_url(consent.id), headers=stranger.headers)
    unknown = client.get(consent_url(uuid.uuid4()), headers=stranger.headers)
    hidden_body = assert_problem(hidden, 404, "not-found")
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert hidden.status_code == unknown.status_code
    assert hidden_body["type"] == unknown_body["type"]
    assert (hidden_body["title"], hidden_body["detail"]) == \
        (unknown_body["title"], unknown_body["detail"])
    assert str(family.id) not in hidden.get_data(as_text=True)


def test_a_consent_read_showing_family_facts_is_accounted_for_with_its_purpose(
        app, client, make, custodian, partner, family):
    """A disclosure names the purpose its decision was made for: here `contact` passes to
    the partner only for `treatment`, under another consent than the one read."""
    treatment = make.consent(family, [custodian.org, partner.org], purposes=("treatment",),
                             categories=("contact",))
    consent = make.consent(family, [custodian.org, partner.org], purposes=("referral",),
                           categories=("identity",))

    read = client.get(consent_url(consent.id), headers=partner.headers)
    listing = client.get(consents_url(family.id), headers=partner.headers)

    assert read.json["explained_in_language"] == "es"
    assert listing.json["items"][0]["explained_in_language"] == "es"
    accounting = client.get(f"/api/v1/families/{family.id}/disclosures",
                            headers=custodian.headers).json["items"]
    seen = sorted((i["action"], i["purpose"], i["categories"], i["consent_ids"])
                  for i in accounting if i["resource"]["type"] == "consent")
    # The grantor's legal authority (`identity`) passes under the consent read itself, for
    # `referral`; the language (`contact`) under the other, for `treatment`: one each.
    assert seen == [("read", "referral", ["identity"], [str(consent.id)]),
                    ("read", "treatment", ["contact"], [str(treatment.id)]),
                    ("search", "referral", ["identity"], [str(consent.id)]),
                    ("search", "treatment", ["contact"], [str(treatment.id)])]


@pytest.mark.parametrize("consent_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000z"])
def test_a_malformed_consent_id_is_404(client, custodian, consent_id):
    assert_problem(client.get(consent_url(consent_id), headers=custodian.headers),
                   404, "not-found")
    assert_problem(client.post(f"{consent_url(consent_id)}/revoke", json={"reason": "asked"},
                               headers=custodian.headers), 404, "not-found")


# -- GET /api/v1/families/{id}/consents -----------------------------------------------------------


def test_the_custodian_lists_all_and_a_party_only_the_consents_naming_it(
        client, make, agency, custodian, partner, stranger, family):
    third = agency("Third Early Intervention", type="early_intervention")
    clock.freeze(T0)
    first = make.consent(family, [custodian.org, partner.org])
    clock.freeze(T0 + timedelta(minutes=1))
    second = make.consent(family, [custodian.org, third.org])
    clock.freeze(T0 + timedelta(minutes=2))
    third_consent = make.consent(family, [partner.org, third.org], recorder=partner.org,
                                 revoked=True)
    clock.freeze(T0 + timedelta(minutes=3))

    def ids(who):
        return [c["id"] for c in listed(client, who, family.id)]

    assert ids(custodian) == [str(third_consent.id), str(second.id), str(first.id)]
    assert ids(partner) == [str(third_consent.id), str(first.id)]
    assert ids(third) == [str(third_consent.id), str(second.id)]

    hidden = client.get(consents_url(family.id), headers=stranger.headers)
    unknown = client.get(consents_url(uuid.uuid4()), headers=stranger.headers)
    hidden_body = assert_problem(hidden, 404, "not-found")
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert (hidden_body["type"], hidden_body["detail"]) == \
        (unknown_body["type"], unknown_body["detail"])


def test_a_stranger_with_consents_for_another_family_still_gets_404(
        client, make, custodian, stranger, family):
    elsewhere = make.family(custodian.org, given_name="Bola")
    make.consent(elsewhere, [custodian.org, stranger.org])

    assert_problem(client.get(consents_url(family.id), headers=stranger.headers),
                   404, "not-found")
    assert len(listed(client, stranger, elsewhere.id)) == 1


def test_the_consent_list_walks_in_keyset_pages(client, make, custodian, partner, family):
    made = []
    for minute in range(3):
        clock.freeze(T0 + timedelta(minutes=minute))
        made.append(str(make.consent(family, [custodian.org, partner.org]).id))

    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = client.get(consents_url(family.id), headers=partner.headers,
                              query_string=query)
        assert response.status_code == 200
        seen += [c["id"] for c in response.json["items"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            break

    assert seen == made[::-1]
    bad = client.get(consents_url(family.id), headers=partner.headers,
                     query_string={"cursor": "forged"})
    assert_validation_error(bad, "cursor")
    bad = client.get(consents_url(family.id), headers=partner.headers,
                     query_string={"limit": 0})
    assert_validation_error(bad, "limit")


# -- POST /api/v1/consents/{id}/revoke ------------------------------------------------------------


def revoke(client, who: Party, consent_id, body=None):
    body = {"reason": "The mother asked to stop sharing."} if body is None else body
    return client.post(f"{consent_url(consent_id)}/revoke", json=body, headers=who.headers)


@pytest.mark.parametrize("by", ["custodian", "partner"])
def test_revoking_answers_200_revoked_with_revoked_at(
        client, make, custodian, partner, family, by):
    clock.freeze(T0)
    consent = make.consent(family, [custodian.org, partner.org])
    clock.freeze(T0 + timedelta(minutes=5))
    who = custodian if by == "custodian" else partner

    response = revoke(client, who, consent.id,
                      {"reason": "The mother asked to stop sharing.",
                       "caregiver_id": str(mother(family).id)})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"] == "revoked"
    assert instant(response.json["revoked_at"]) == T0 + timedelta(minutes=5)
    assert response.json["revocation_reason"] == "The mother asked to stop sharing."
    assert response.json.get("revocation_requested_by", "caregiver") == "caregiver"
    # The answer is the record as its revoker may see it now, as a read right after shows it:
    # the partner's only consent is gone, so the family facts in it no longer pass.
    again = client.get(consent_url(consent.id), headers=who.headers)
    assert again.json == response.json
    assert response.json["redacted"] == ([] if by == "custodian" else ["contact", "identity"])
    # The partner still learns the consent was revoked, but no longer the family's facts in
    # it (its only consent is gone), and the reason only if it wrote it.
    seen = client.get(consent_url(consent.id), headers=partner.headers).json
    assert (seen["status"], seen["revoked_at"]) == ("revoked", response.json["revoked_at"])
    assert seen["redacted"] == ["contact", "identity"]
    assert "explained_in_language" not in seen and "interpreter_used" not in seen
    assert seen["grantor"] == {}
    assert ("revocation_reason" in seen) is (by == "partner")


def test_a_contact_only_party_is_not_told_which_caregiver_granted(client, make):
    """Only a caregiver with legal authority grants: the grantor's id, beside the phones a
    `contact` look shows with each caregiver's id, would tell a party seeing `contact` alone
    which caregiver holds authority over the child, an `identity` fact (a review)."""
    from tests.referrals.conftest import network

    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.provider], purposes=("treatment",),
                           categories=("contact",))
    family = client.get(f"/api/v1/families/{net.family.id}?purpose=treatment",
                        headers=net.as_provider).json
    assert family["redacted"] == ["identity"] and family["caregivers"][0]["phone"]
    listed = client.get(f"/api/v1/families/{net.family.id}/consents",
                        headers=net.as_provider).json["items"]
    record = next(c for c in listed if c["id"] == str(consent.id))
    assert record["grantor"] == {} and record["redacted"] == ["identity"]
    # Its recorder, the clinic, sees it.
    mine = client.get(f"/api/v1/consents/{consent.id}", headers=net.as_clinic).json
    assert set(mine["grantor"]) == {"caregiver_id", "legal_authority"}


def test_a_revocation_shows_and_records_the_facts_another_consent_still_lets_pass(
        app, client, make, custodian, partner, family):
    """The revocation is a change, and its answer, showing family facts under the consent
    still in force, a disclosure: one event each, and the disclosure in the accounting."""
    revoked = make.consent(family, [custodian.org, partner.org], purposes=("referral",))
    still = make.consent(family, [custodian.org, partner.org], purposes=("treatment",))
    response = revoke(client, partner, revoked.id)
    assert response.status_code == 200
    assert response.json["redacted"] == []
    assert response.json["explained_in_language"] == "es"
    with app.app_context():
        [change] = audit_events(action="revoke")
        assert (change.reason, change.categories, change.consent_ids) == \
            ("requested_by_caregiver", [], [str(revoked.id)])
        [shown] = audit_events(action="read", resource_type="consent")
        assert (shown.reason, shown.purpose, shown.categories, shown.consent_ids) == \
            ("consent", "treatment", ["contact", "identity"], [str(still.id)])
    accounting = client.get(f"/api/v1/families/{family.id}/disclosures",
                            headers=custodian.headers)
    assert accounting.status_code == 200, accounting.get_data(as_text=True)
    seen = [(item["organization_id"], item["purpose"], item["categories"], item["consent_ids"])
            for item in accounting.json["items"]]
    assert seen == [(str(partner.org.id), "treatment", ["contact", "identity"], [str(still.id)])]


def test_a_revocation_whose_answer_shows_no_family_facts_is_no_disclosure(
        app, client, make, custodian, partner, family):
    consent = make.consent(family, [custodian.org, partner.org])
    assert revoke(client, partner, consent.id).json["redacted"] == ["contact", "identity"]
    with app.app_context():
        assert [e.action for e in audit_events(resource_type="consent")] == ["revoke"]


def test_revoking_again_answers_200_with_the_consent_unchanged(
        client, make, custodian, partner, family):
    consent = make.consent(family, [custodian.org, partner.org])
    first = revoke(client, custodian, consent.id, {"reason": "Asked by the mother.",
                                                   "requested_by": "caregiver"})
    assert first.status_code == 200

    again = revoke(client, partner, consent.id, {"reason": "Another reason.",
                                                 "requested_by": "organization"})

    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.json["revoked_at"] == first.json["revoked_at"]
    assert "revocation_reason" not in again.json  # the custodian's words, not the partner's
    kept = client.get(consent_url(consent.id), headers=custodian.headers).json
    assert kept["revocation_reason"] == "Asked by the mother."
    assert kept["revoked_at"] == first.json["revoked_at"]


@pytest.mark.parametrize(("body", "path"), [
    ({}, "reason"),
    ({"reason": ""}, "reason"),
    ({"reason": "   "}, "reason"),
    ({"reason": None}, "reason"),
    ({"reason": "x" * 1001}, "reason"),
    ({"reason": "Asked.", "requested_by": "robot"}, "requested_by"),
    ({"reason": "Asked.", "caregiver_id": "not-a-uuid"}, "caregiver_id"),
    ({"reason": "Asked.", "undo_disclosures": True}, "undo_disclosures"),
])
def test_a_bad_revocation_is_422_and_the_consent_stays_active(
        client, make, custodian, partner, family, body, path):
    consent = make.consent(family, [custodian.org, partner.org])

    response = revoke(client, custodian, consent.id, body)

    assert_validation_error(response, path)
    assert status_of(client, custodian, consent.id) == "active"


@pytest.mark.parametrize("whose", ["another family", "nobody"])
def test_revoking_for_a_caregiver_of_another_family_is_422(
        client, make, custodian, partner, family, whose):
    consent = make.consent(family, [custodian.org, partner.org])
    elsewhere = make.family(custodian.org, given_name="Bola")
    caregiver_id = str(mother(elsewhere).id) if whose == "another family" else str(uuid.uuid4())

    response = revoke(client, custodian, consent.id,
                      {"reason": "Asked.", "caregiver_id": caregiver_id})

    assert_validation_error(response, "caregiver_id")
    assert status_of(client, custodian, consent.id) == "active"
    assert client.get(f"/api/v1/families/{family.id}", headers=partner.headers).status_code \
        == 200


def test_a_stranger_revoking_gets_404_like_an_unknown_id(
        client, make, custodian, partner, stranger, family):
    consent = make.consent(family, [custodian.org, partner.org])

    hidden = revoke(client, stranger, consent.id)
    unknown = revoke(client, stranger, uuid.uuid4())
    # A caregiver id that is not the family's tells the stranger nothing either.
    probe = revoke(client, stranger, consent.id, {"reason": "Asked.",
                                                  "caregiver_id": str(uuid.uuid4())})
    assert_problem(probe, 404, "not-found")

    hidden_body = assert_problem(hidden, 404, "not-found")
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert (hidden_body["type"], hidden_body["detail"]) == \
        (unknown_body["type"], unknown_body["detail"])
    assert status_of(client, custodian, consent.id) == "active"


def test_after_revocation_the_other_party_sees_nothing_at_once(
        client, make, custodian, partner, family):
    consent = make.consent(family, [custodian.org, partner.org])
    family_url = f"/api/v1/families/{family.id}"
    seen = client.get(family_url, headers=partner.headers)
    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert seen.json["redacted"] == []
    assert decide(client, partner, family.id, "care_coordination",
                  ["identity"]).json["decision"] == "permit"

    assert revoke(client, custodian, consent.id).status_code == 200

    assert_problem(client.get(family_url, headers=partner.headers), 404, "not-found")
    for purpose in ("referral", "care_coordination", "treatment"):
        response = client.get(family_url, headers=partner.headers,
                              query_string={"purpose": purpose})
        assert_problem(response, 404, "not-found")
    after = decide(client, partner, family.id, "care_coordination", ["identity"])
    assert after.status_code == 200
    assert after.json["decision"] == "deny"
    assert after.json["permitted_categories"] == []
    # The custodian still holds its record.
    assert client.get(family_url, headers=custodian.headers).status_code == 200


def test_revocation_takes_effect_even_within_the_same_clock_instant(
        client, make, custodian, partner, family):
    clock.freeze(T0)
    consent = make.consent(family, [custodian.org, partner.org])

    assert revoke(client, partner, consent.id).status_code == 200

    assert_problem(client.get(f"/api/v1/families/{family.id}", headers=partner.headers),
                   404, "not-found")
    assert status_of(client, partner, consent.id) == "revoked"


# -- no way to edit a consent -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_a_consent_cannot_be_edited_or_deleted(client, make, custodian, partner, family, method):
    consent = make.consent(family, [custodian.org, partner.org])
    before = client.get(consent_url(consent.id), headers=custodian.headers).json

    response = client.open(consent_url(consent.id), method=method, headers=custodian.headers,
                           json=None if method == "DELETE" else {"categories": ["health"]})

    assert_problem(response, 405, "method-not-allowed")
    assert method not in response.headers["Allow"]
    assert "GET" in response.headers["Allow"]
    assert client.get(consent_url(consent.id), headers=custodian.headers).json == before


# -- POST /api/v1/consent-decisions ---------------------------------------------------------------


def last_decide_event():
    events = audit_events(action="decide")
    assert events
    return events[-1]


def assert_decide_recorded(app, who: Party, family_id, purpose, asked, outcome, consent_ids):
    with app.app_context():
        event = last_decide_event()
        assert event.outcome == outcome
        assert event.organization_id == who.org.id
        assert event.family_id == family_id
        assert event.purpose == purpose
        assert sorted(event.categories) == sorted(asked)
        assert sorted(str(c) for c in event.consent_ids) == sorted(str(c) for c in consent_ids)


def test_all_asked_categories_covered_is_permit(app, client, make, custodian, partner, family):
    consent = make.consent(family, [custodian.org, partner.org],
                           purposes=("referral", "care_coordination"),
                           categories=("identity", "contact", "referral_reason"))

    response = decide(client, partner, family.id, "referral", ["identity", "contact"])

    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.json
    assert answer.keys() == DECISION_KEYS
    assert answer["decision"] == "permit"
    assert sorted(answer["permitted_categories"]) == ["contact", "identity"]
    assert answer["consent_ids"] == [str(consent.id)]
    assert answer["reason"] == "consent"
    assert_decide_recorded(app, partner, family.id, "referral", ["identity", "contact"],
                           "permit", [consent.id])


def test_partly_covered_is_deny_with_the_permitted_subset(
        app, client, make, custodian, partner, family):
    consent = make.consent(family, [custodian.org, partner.org],
                           categories=("identity", "contact"))

    response = decide(client, partner, family.id, "care_coordination",
                      ["identity", "health", "screening"])

    assert response.status_code == 200
    assert response.json["decision"] == "deny"
    assert response.json["permitted_categories"] == ["identity"]
    assert response.json["consent_ids"] == [str(consent.id)]
    assert isinstance(response.json["reason"], str) and response.json["reason"]
    assert_decide_recorded(app, partner, family.id, "care_coordination",
                           ["identity", "health", "screening"], "deny", [consent.id])


def test_two_consents_combine_and_both_are_named(client, make, custodian, partner, family):
    clock.freeze(T0)
    first = make.consent(family, [custodian.org, partner.org], categories=("identity",))
    clock.freeze(T0 + timedelta(minutes=1))
    second = make.consent(family, [custodian.org, partner.org], categories=("contact",))

    response = decide(client, partner, family.id, "referral", ["identity", "contact"])

    assert response.json["decision"] == "permit"
    assert sorted(response.json["consent_ids"]) == sorted([str(first.id), str(second.id)])


@pytest.mark.parametrize(("build", "purpose"), [
    ({"purposes": ("referral",)}, "treatment"),
    ({"purposes": ("referral",)}, "care_coordination"),
    ({"revoked": True}, "referral"),
    ({"effective_at": T0 - 20 * DAY, "expires_in_days": 10}, "referral"),
    ({"effective_at": T0 + DAY}, "referral"),
])
def test_no_consent_in_force_for_the_purpose_is_deny(
        app, client, make, custodian, partner, family, build, purpose):
    clock.freeze(T0)
    make.consent(family, [custodian.org, partner.org], **build)

    response = decide(client, partner, family.id, purpose, ["identity"])

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["decision"] == "deny"
    assert response.json["permitted_categories"] == []
    assert response.json["consent_ids"] == []
    assert_decide_recorded(app, partner, family.id, purpose, ["identity"], "deny", [])


def test_a_consent_not_naming_the_custodian_does_not_disclose_its_record(
        client, make, agency, custodian, partner, family):
    third = agency("Third Early Intervention", type="early_intervention")
    make.consent(family, [partner.org, third.org], recorder=partner.org)

    response = decide(client, partner, family.id, "referral", ["identity"])

    assert response.status_code == 200
    assert response.json["decision"] == "deny"
    assert response.json["permitted_categories"] == []


def test_the_custodian_is_permitted_with_reason_custodian(app, client, custodian, family):
    asked = ["identity", "contact", "health", "child_welfare"]

    response = decide(client, custodian, family.id, "treatment", asked)

    assert response.status_code == 200
    assert response.json == {"decision": "permit", "permitted_categories": sorted(asked),
                             "consent_ids": [], "reason": "custodian"}
    assert_decide_recorded(app, custodian, family.id, "treatment", asked, "permit", [])


@pytest.mark.parametrize("family_is", ["unlinked", "unknown", "linked to another family"])
def test_a_family_without_a_consent_link_to_the_caller_is_404(
        app, client, make, custodian, stranger, family, family_is):
    if family_is == "linked to another family":
        elsewhere = make.family(custodian.org, given_name="Bola")
        make.consent(elsewhere, [custodian.org, stranger.org])
    family_id = uuid.uuid4() if family_is == "unknown" else family.id

    response = decide(client, stranger, family_id, "referral", ["identity"])
    unknown = decide(client, stranger, uuid.uuid4(), "referral", ["identity"])

    body = assert_problem(response, 404, "not-found")
    assert body["detail"] == assert_problem(unknown, 404, "not-found")["detail"]
    with app.app_context():
        refused = [e for e in audit_events(action="decide")
                   if e.organization_id == stranger.org.id]
        assert refused and all(e.outcome == "deny" for e in refused)


@pytest.mark.parametrize(("body", "path"), [
    ({"purpose": "referral", "categories": ["identity"]}, "family_id"),
    ({"family_id": "not-a-uuid", "purpose": "referral", "categories": ["identity"]},
     "family_id"),
    ({"family_id": "FAMILY", "categories": ["identity"]}, "purpose"),
    ({"family_id": "FAMILY", "purpose": "marketing", "categories": ["identity"]}, "purpose"),
    ({"family_id": "FAMILY", "purpose": "referral", "categories": []}, "categories"),
    ({"family_id": "FAMILY", "purpose": "referral"}, "categories"),
    ({"family_id": "FAMILY", "purpose": "referral", "categories": ["finances"]},
     "categories.0"),
    ({"family_id": "FAMILY", "purpose": "referral", "categories": ["identity", "identity"]},
     "categories"),
    ({"family_id": "FAMILY", "purpose": "referral", "categories": ["identity"], "at": "now"},
     "at"),
])
def test_a_bad_decision_request_is_422(client, custodian, family, body, path):
    body = {k: (str(family.id) if v == "FAMILY" else v) for k, v in body.items()}

    response = client.post("/api/v1/consent-decisions", json=body, headers=custodian.headers)

    assert_validation_error(response, path)


# -- scopes and tokens ----------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "record", "consent:write"),
    ("GET", "list", "consent:read"),
    ("GET", "read", "consent:read"),
    ("POST", "revoke", "consent:write"),
    ("POST", "decide", "consent:read"),
]


def _request(client, where, family, consent, parties, headers):
    if where == "record":
        return client.post(consents_url(family.id), headers=headers,
                           json=consent_body(family, parties))
    if where == "list":
        return client.get(consents_url(family.id), headers=headers)
    if where == "read":
        return client.get(consent_url(consent.id), headers=headers)
    if where == "revoke":
        return client.post(f"{consent_url(consent.id)}/revoke", headers=headers,
                           json={"reason": "Asked."})
    return client.post("/api/v1/consent-decisions", headers=headers,
                       json={"family_id": str(family.id), "purpose": "referral",
                             "categories": ["identity"]})


@pytest.mark.parametrize(("method", "where", "scope"), ENDPOINTS)
def test_a_token_without_the_routes_scope_is_403(
        client, make, custodian, partner, family, method, where, scope):
    consent = make.consent(family, [custodian.org, partner.org])
    before = listed(client, custodian, family.id)
    wrong = bearer(make.token(custodian.org, [s for s in SCOPES if s != scope]))

    response = _request(client, where, family, consent, [custodian.org, partner.org], wrong)

    assert_problem(response, 403, "insufficient-scope")
    assert response.request.method == method
    assert listed(client, custodian, family.id) == before


@pytest.mark.parametrize(("method", "where", "scope"), ENDPOINTS)
@pytest.mark.parametrize("token", ["none", "unknown", "expired", "revoked"])
def test_without_a_valid_token_it_is_401(
        client, make, custodian, partner, family, method, where, scope, token):
    consent = make.consent(family, [custodian.org, partner.org])
    before = listed(client, custodian, family.id)
    auth = {
        "none": {},
        "unknown": bearer("not-a-token-this-service-issued"),
        "expired": bearer(make.token(custodian.org, ALL, lifetime=-1)),
        "revoked": bearer(make.token(custodian.org, ALL, revoked=True)),
    }[token]

    response = _request(client, where, family, consent, [custodian.org, partner.org], auth)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.request.method == method
    assert listed(client, custodian, family.id) == before


def test_a_revoked_party_no_longer_reads_the_familys_facts_in_the_consent(
        client, make, custodian, partner, family):
    """The review's case: the family revokes; the partner keeps only the record's skeleton."""
    consent = make.consent(family, [custodian.org, partner.org])
    before = client.get(consent_url(consent.id), headers=partner.headers).json
    assert before["redacted"] == [] and before["explained_in_language"] == "es"
    reason = "Mother moved to a shelter; do not disclose location"
    assert revoke(client, custodian, consent.id, {"reason": reason}).status_code == 200

    for answer in (client.get(consent_url(consent.id), headers=partner.headers).json,
                   client.get(f"/api/v1/families/{family.id}/consents",
                              headers=partner.headers).json["items"][0]):
        assert answer["status"] == "revoked"
        assert reason not in str(answer)
        assert "explained_in_language" not in answer and "interpreter_used" not in answer
        assert answer["redacted"] == ["contact", "identity"]


@pytest.mark.parametrize("field,value", [
    ("signed_at", "0001-01-01T00:00:00+01:00"),
    ("expires_at", "9999-12-31T23:59:59-05:00"),
    ("effective_at", "1850-01-01T00:00:00Z"),
])
def test_instants_out_of_range_are_422_not_500(client, custodian, partner, family, field,
                                                value):
    body = consent_body(family, [custodian.org, partner.org]) | {field: value}
    answer = client.post(f"/api/v1/families/{family.id}/consents", json=body,
                         headers=custodian.headers)
    assert_validation_error(answer, field)


# -- consents and a concurrent change of the caregivers -------------------------------------------


def _skip_on_sqlite(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the two requests never overlap")


def _clinic_and_provider(app):
    """A clinic holding a family, a provider, and the clinic's headers, committed (the two
    requests of a race need to see them); skipped on SQLite."""
    _skip_on_sqlite(app)
    make = Factory(app)
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    family = make.family(clinic)
    return make, clinic, provider, family, bearer(make.token(clinic))


def _keep_only(client, family, caregiver, headers, **changes):
    """PATCH the family down to `caregiver` alone (with `changes` to it)."""
    return client.patch(f"/api/v1/families/{family.id}", headers=headers, json={"caregivers": [
        {"id": str(caregiver.id), "given_name": caregiver.given_name,
         "family_name": caregiver.family_name, "relationship": caregiver.relationship,
         "has_legal_authority": caregiver.has_legal_authority} | changes]})


@pytest.mark.no_db
def test_recording_a_consent_while_the_grantor_is_removed_is_not_a_500(served, monkeypatch):
    """The recording holds the family while it checks the grantor and stores the consent; the
    removal of that caregiver waits, then finds the consent: 201 then 409, never a 500."""
    make, clinic, provider, family, headers = _clinic_and_provider(served)
    checked = threading.Event()
    check = consent.service._consent_errors

    def check_then_wait(*args, **kwargs):
        errors = check(*args, **kwargs)
        checked.set()
        time.sleep(0.5)  # the PATCH arrives meanwhile
        return errors

    monkeypatch.setattr(consent.service, "_consent_errors", check_then_wait)
    answers = {}

    def record_it():
        answers["record"] = served.test_client().post(
            consents_url(family.id), json=consent_body(family, [clinic, provider]),
            headers=headers)

    thread = threading.Thread(target=record_it)
    thread.start()
    assert checked.wait(10)
    answers["patch"] = _keep_only(served.test_client(), family, grandmother(family), headers)
    thread.join(30)

    assert (answers["record"].status_code, answers["patch"].status_code) == (201, 409), \
        (answers["record"].json, answers["patch"].json)


@pytest.mark.no_db
def test_a_consent_recorded_while_the_grantor_loses_legal_authority_is_refused(
        served, monkeypatch):
    """A change of the caregivers holds the family: a consent recorded meanwhile waits, and
    its grantor is checked as the change left them (no consent from someone without
    authority is stored)."""
    make, clinic, provider, family, headers = _clinic_and_provider(served)
    changing = threading.Event()
    apply = families.service._apply

    def apply_then_wait(*args, **kwargs):
        apply(*args, **kwargs)
        changing.set()
        time.sleep(0.5)  # the consent arrives meanwhile

    monkeypatch.setattr(families.service, "_apply", apply_then_wait)
    answers = {}

    def withdraw_authority():
        answers["patch"] = _keep_only(served.test_client(), family, mother(family), headers,
                                      has_legal_authority=False)

    thread = threading.Thread(target=withdraw_authority)
    thread.start()
    assert changing.wait(10)
    answers["record"] = served.test_client().post(
        consents_url(family.id), json=consent_body(family, [clinic, provider]), headers=headers)
    thread.join(30)

    assert answers["patch"].status_code == 200, answers["patch"].json
    assert answers["record"].status_code == 422, answers["record"].json
    assert list(answers["record"].json["errors"]) == ["grantor.caregiver_id"]


@pytest.mark.no_db
def test_revoking_for_a_caregiver_removed_meanwhile_is_422_not_500(served, monkeypatch):
    """The revocation checks its caregiver once it holds the family, as the family is then:
    one removed meanwhile is no longer the family's."""
    make, clinic, provider, family, headers = _clinic_and_provider(served)
    revoked = make.consent(family, [clinic, provider])
    found = threading.Event()
    view = consent.service._view

    def view_then_wait(*args, **kwargs):
        seen = view(*args, **kwargs)
        if not found.is_set():  # the revocation has found the consent, not yet revoked it
            found.set()
            time.sleep(0.5)  # the PATCH arrives meanwhile
        return seen

    monkeypatch.setattr(consent.service, "_view", view_then_wait)
    answers = {}

    def revoke_it():
        answers["revoke"] = served.test_client().post(
            f"{consent_url(revoked.id)}/revoke", headers=headers,
            json={"reason": "Asked by the grandmother.",
                  "caregiver_id": str(grandmother(family).id)})

    thread = threading.Thread(target=revoke_it)
    thread.start()
    assert found.wait(10)
    answers["patch"] = _keep_only(served.test_client(), family, mother(family), headers)
    thread.join(30)

    assert answers["patch"].status_code == 200, answers["patch"].json
    assert_validation_error(answers["revoke"], "caregiver_id")
