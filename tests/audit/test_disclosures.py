"""The accounting of disclosures: who outside the custodian saw a family's information."""

import pytest

from tests.conftest import bearer
from tests.referrals.conftest import FULL, accepted, move, network


@pytest.fixture
def disclosed(client, make):
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    family = make.family(clinic)
    consent = make.consent(family, [clinic, provider], categories=("identity",))
    reader = make.token(provider, ["families:read"])
    for purpose in ("referral", "care_coordination"):
        assert client.get(f"/api/v1/families/{family.id}?purpose={purpose}",
                          headers=bearer(reader)).status_code == 200
    # The custodian's own reads are not disclosures.
    own = make.token(clinic, ["families:read"])
    assert client.get(f"/api/v1/families/{family.id}", headers=bearer(own)).status_code == 200
    return clinic, provider, family, consent, own


def test_the_custodian_reads_who_saw_what_newest_first(client, disclosed):
    clinic, provider, family, consent, own = disclosed
    answer = client.get(f"/api/v1/families/{family.id}/disclosures", headers=bearer(own))
    assert answer.status_code == 200
    items = answer.json["items"]
    assert [(i["organization_id"], i["purpose"]) for i in items] == [
        (str(provider.id), "care_coordination"), (str(provider.id), "referral")]
    for item in items:
        assert item["action"] == "read"
        assert item["categories"] == ["identity"]
        assert item["consent_ids"] == [str(consent.id)]
        assert item["resource"] == {"type": "family", "id": str(family.id)}
        assert set(item) == {"seq", "recorded_at", "organization_id", "action", "purpose",
                             "categories", "consent_ids", "resource"}
    assert items[0]["seq"] > items[1]["seq"]


def test_an_auditor_reads_any_family_and_pages(client, make, disclosed):
    family = disclosed[2]
    auditor = make.token(make.organization(name="Privacy Office", type="community_other"),
                         ["audit:read"])
    first = client.get(f"/api/v1/families/{family.id}/disclosures?limit=1",
                       headers=bearer(auditor))
    assert first.status_code == 200 and len(first.json["items"]) == 1
    second = client.get(f"/api/v1/families/{family.id}/disclosures?limit=1"
                        f"&cursor={first.json['next_cursor']}", headers=bearer(auditor))
    assert len(second.json["items"]) == 1
    assert second.json["next_cursor"] is None
    assert second.json["items"][0]["seq"] < first.json["items"][0]["seq"]


@pytest.mark.parametrize("who", ["provider", "stranger"])
def test_others_get_404_even_with_families_read(client, make, disclosed, who):
    clinic, provider, family, _, _ = disclosed
    organization = provider if who == "provider" else make.organization(name="Stranger")
    answer = client.get(f"/api/v1/families/{family.id}/disclosures",
                        headers=bearer(make.token(organization, ["families:read"])))
    assert answer.status_code == 404


def test_the_custodian_needs_families_read(client, make, disclosed):
    clinic, _, family, _, _ = disclosed
    answer = client.get(f"/api/v1/families/{family.id}/disclosures",
                        headers=bearer(make.token(clinic, ["directory:read"])))
    assert answer.status_code == 403
    assert answer.json["type"] == "/problems/insufficient-scope"


@pytest.mark.parametrize("query", ["limit=0", "cursor=forged", "since=2026-01-01"])
def test_bad_queries_are_422(client, disclosed, query):
    family, own = disclosed[2], disclosed[4]
    answer = client.get(f"/api/v1/families/{family.id}/disclosures?{query}", headers=bearer(own))
    assert answer.status_code == 422


def test_asking_the_engine_is_not_a_disclosure(client, make, disclosed):
    clinic, provider, family, _, own = disclosed
    asked = client.post("/api/v1/consent-decisions",
                        json={"family_id": str(family.id), "purpose": "referral",
                              "categories": ["identity"]},
                        headers=bearer(make.token(provider, ["consent:read"])))
    assert asked.status_code == 200 and asked.json["decision"] == "permit"
    items = client.get(f"/api/v1/families/{family.id}/disclosures", headers=bearer(own)).json
    assert {item["action"] for item in items["items"]} == {"read"}


@pytest.fixture
def net(make):
    """A clinic (the custodian) and a provider under one consent for every category."""
    n = network(make)
    make.consent(n.family, [n.clinic, n.provider], categories=FULL)
    n.clinic_reader = bearer(make.token(n.clinic, ["families:read"]))
    return n


def _accounting(client, net):
    answer = client.get(f"/api/v1/families/{net.family.id}/disclosures?limit=200",
                        headers=net.clinic_reader)
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


def test_the_custodian_following_its_referral_is_not_a_disclosure(client, net):
    """Who saw the family's information outside its custodian: the clinic reading the
    provider's feedback and notes on its own referral saw them under consent, but nothing
    about the family left the clinic."""
    rid, etag = accepted(client, net)
    assert move(client, rid, net.as_provider, etag, status="in_progress",
                business_status="scheduled").status_code == 200
    assert client.post(f"/api/v1/referrals/{rid}/notes", json={"body": "Visit booked."},
                       headers=net.as_provider).status_code == 201
    read = client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic)
    assert read.json["business_status"] == "scheduled"  # seen under consent
    for path in (f"/api/v1/referrals/{rid}/notes", f"/api/v1/referrals/{rid}/events",
                 "/api/v1/referrals?direction=sent"):
        assert client.get(path, headers=net.as_clinic).status_code == 200

    items = _accounting(client, net)
    assert {i["organization_id"] for i in items} == {str(net.provider.id)}


def test_every_kind_of_look_by_the_receiver_is_counted_and_nothing_else(client, make, net):
    """Reads, moves' answers and list pages by the receiver are in the accounting; a refused
    look and another family's read are not."""
    other = make.family(net.clinic, given_name="Zed")
    make.consent(other, [net.clinic, net.provider], categories=("identity",))
    assert client.get(f"/api/v1/families/{other.id}?purpose=referral",
                      headers=net.as_provider).status_code == 200
    assert client.get(f"/api/v1/families/{net.family.id}?purpose=treatment",
                      headers=net.as_stranger).status_code == 404
    rid, _ = accepted(client, net)
    assert client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).status_code == 200
    assert client.get("/api/v1/referrals?direction=received",
                      headers=net.as_provider).status_code == 200

    items = _accounting(client, net)
    assert {i["organization_id"] for i in items} == {str(net.provider.id)}
    assert {i["action"] for i in items} == {"read", "search"}
    assert sum(i["resource"]["id"] == rid for i in items) == 2  # the move's answer, the read
    assert all(i["purpose"] for i in items)
    assert str(other.id) not in {i["resource"]["id"] for i in items}


def test_reading_the_accounting_is_recorded_with_who_read_it(app, client, make, disclosed):
    """The custodian's read and an auditor's are told apart on the trail (`reason`)."""
    from tests.conftest import audit_events

    clinic, _, family, _, own = disclosed
    auditor = make.organization(name="Privacy Office", type="community_other")
    for token in (own, make.token(auditor, ["audit:read"])):
        answer = client.get(f"/api/v1/families/{family.id}/disclosures", headers=bearer(token))
        assert answer.status_code == 200
    with app.app_context():
        reads = audit_events(resource_type="disclosures")
    assert [(e.organization_id, e.reason, e.family_id) for e in reads] == [
        (clinic.id, "custodian", family.id), (auditor.id, "auditor", family.id)]
