"""Real answers against the document the service serves: each validates against its
operation's documented schema (with openapi-schema-validator, the validator openapi-core uses),
and the document names, and requires, the members the service always sends."""

import uuid
from datetime import timedelta

import pytest

from core import time as clock
from core.time import rfc3339
from tests.conftest import bearer
from tests.openapi.validation import answer_errors, component
from tests.referrals.conftest import move, network, send

#: Consent members an organization may not see: `contact` information under consent, and the
#: free-text reason of a revocation it did not record.
WITHHELD_FROM_A_CONSENT = {"explained_in_language", "interpreter_used", "revocation_reason"}


@pytest.fixture
def document(client):
    """The document the service serves, as partner agencies fetch it."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


@pytest.fixture
def net(make):
    return network(make)


def consent_body(net) -> dict:
    mother = next(c for c in net.family.caregivers if c.has_legal_authority)
    return {"grantor": {"caregiver_id": str(mother.id), "legal_authority": "parent"},
            "organization_ids": [str(net.clinic.id), str(net.provider.id)],
            "purposes": ["referral", "care_coordination"],
            "categories": ["identity", "contact", "referral_reason"],
            "expires_at": rfc3339(clock.now() + timedelta(days=90)), "method": "written",
            "signed_at": rfc3339(clock.now() - timedelta(hours=1)), "explained_in_language": "es",
            "interpreter_used": True, "revocation_rights_explained": True}


@pytest.fixture
def rejected(client, make, net):
    """A referral the provider rejected, its family's consent letting feedback through."""
    make.consent(net.family, [net.clinic, net.provider],
                 categories=("identity", "contact", "referral_reason", "service_status"))
    sent = send(client, net)
    assert sent.status_code == 201, sent.json
    answer = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                  status="rejected", reason="at_capacity")
    assert answer.status_code == 200, answer.json
    return sent.json["id"]


@pytest.fixture
def auditor(client, make):
    """Headers of an auditor, after a request that left a denied event in the trail."""
    organization = make.organization(name="Privacy Office", type="community_other")
    headers = bearer(make.token(organization, ["audit:read", "directory:read"]))
    assert client.get(f"/api/v1/organizations/{uuid.uuid4()}", headers=headers).status_code \
        == 404
    return headers


# -- nullable enums and objects answer null ------------------------------------------------------


def test_a_recorded_consent_answers_as_documented(client, net, document):
    response = client.post(f"/api/v1/families/{net.family.id}/consents", json=consent_body(net),
                           headers=net.as_clinic)

    assert response.status_code == 201, response.json
    assert response.json["revocation_requested_by"] is None  # not revoked
    assert answer_errors(document, "POST", "/api/v1/families/{family_id}/consents",
                         response) == []


@pytest.mark.parametrize("categories", [("identity",), ("identity", "contact")])
def test_a_family_read_under_consent_answers_as_documented(client, make, net, document,
                                                           categories):
    """The child and the contact preferences are shown whole or not at all: the document
    requires their members; a caregiver's only member always shown is its id."""
    make.consent(net.family, [net.clinic, net.provider], categories=categories)
    read = client.get(f"/api/v1/families/{net.family.id}?purpose=referral",
                      headers=net.as_provider)

    assert read.status_code == 200, read.json
    assert answer_errors(document, "GET", "/api/v1/families/{family_id}", read) == []
    assert set(component(document, "Child")["required"]) == set(read.json["child"])
    assert component(document, "Caregiver")["required"] == ["id"]
    if "contact" in categories:
        assert set(component(document, "ContactPreferences")["required"]) == \
            set(read.json["contact_preferences"])


def test_a_rejected_referral_answers_as_documented(client, net, rejected, document):
    read = client.get(f"/api/v1/referrals/{rejected}", headers=net.as_clinic)

    assert read.status_code == 200
    assert read.json["status_reason"] == "at_capacity"
    assert read.json["outcome"] is None
    assert answer_errors(document, "GET", "/api/v1/referrals/{referral_id}", read) == []


def test_a_referrals_timeline_answers_as_documented(client, net, rejected, document):
    events = client.get(f"/api/v1/referrals/{rejected}/events", headers=net.as_provider)

    assert events.status_code == 200
    assert {event["from_status"] for event in events.json["items"]} >= {None}  # when it was sent
    assert answer_errors(document, "GET", "/api/v1/referrals/{referral_id}/events",
                         events) == []


# -- members always answered are required --------------------------------------------------------


@pytest.mark.parametrize("capacity", [None, {"status": "waitlist"}, {"status": "full"}])
def test_every_member_of_a_directory_entry_is_answered_and_required(client, make, document,
                                                                     capacity):
    organization = make.organization(name="Riverbend")
    headers = bearer(make.token(organization, ["directory:read", "directory:write"]))
    if capacity is not None:
        assert client.patch(f"/api/v1/organizations/{organization.id}",
                            json={"capacity": capacity}, headers=headers).status_code == 200

    entry = client.get(f"/api/v1/organizations/{organization.id}", headers=headers)
    me = client.get("/api/v1/me", headers=headers)

    schema = component(document, "Organization")
    assert set(entry.json) == set(me.json["organization"]) == set(schema["required"])
    if capacity is not None:
        assert set(entry.json["capacity"]) \
            == set(schema["properties"]["capacity"]["anyOf"][0]["required"])
    assert answer_errors(document, "GET", "/api/v1/organizations/{organization_id}", entry) == []
    assert answer_errors(document, "GET", "/api/v1/me", me) == []


def test_every_member_of_an_audit_event_is_answered_and_required(client, auditor, document):
    newest = client.get("/api/v1/audit/events", query_string={"limit": "1"},
                        headers=auditor).json["items"][0]

    event = client.get(f"/api/v1/audit/events/{newest['seq']}", headers=auditor)

    assert event.json["outcome"] == "deny"
    assert set(event.json) == set(component(document, "AuditEvent")["required"])
    assert answer_errors(document, "GET", "/api/v1/audit/events/{seq}", event) == []


def test_the_actor_resource_and_request_of_an_audit_event_are_documented(client, auditor,
                                                                         document):
    """API.md: `actor` {organization_id, client_id, token_id}, `resource` {type, id},
    `request` {id, method, path, ip}."""
    events = client.get("/api/v1/audit/events", query_string={"limit": "1"}, headers=auditor)
    event = events.json["items"][0]
    properties = component(document, "AuditEvent")["properties"]

    for member in ("actor", "resource", "request"):
        assert set(properties[member]["properties"]) == set(event[member])
        assert set(properties[member]["required"]) == set(event[member])
    assert answer_errors(document, "GET", "/api/v1/audit/events", events) == []


def test_every_member_of_a_disclosure_is_answered_and_required(client, net, rejected,
                                                               document):
    assert client.get(f"/api/v1/referrals/{rejected}", headers=net.as_provider).status_code \
        == 200  # the provider reads the family under consent

    disclosures = client.get(f"/api/v1/families/{net.family.id}/disclosures",
                             headers=net.as_clinic)

    assert disclosures.status_code == 200
    assert disclosures.json["items"]
    schema = component(document, "Disclosure")
    for disclosure in disclosures.json["items"]:
        assert set(disclosure) == set(schema["required"])
        assert set(disclosure["resource"]) == set(schema["properties"]["resource"]["required"])
    assert answer_errors(document, "GET", "/api/v1/families/{family_id}/disclosures",
                         disclosures) == []


def test_a_consent_requires_every_member_but_what_may_be_withheld(client, make, net,
                                                                 document):
    """The custodian sees the whole record; the stranger to the family's contact
    information does not see `interpreter_used` or `explained_in_language`."""
    consent = make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    schema = component(document, "Consent")

    whole = client.get(f"/api/v1/consents/{consent.id}", headers=net.as_clinic)
    partial = client.get(f"/api/v1/consents/{consent.id}", headers=net.as_provider)

    assert set(whole.json) - set(schema["required"]) == WITHHELD_FROM_A_CONSENT
    assert set(schema["required"]) <= set(partial.json)
    assert partial.json["redacted"] == ["contact"]
    grantor = component(document, "Grantor")
    assert set(whole.json["grantor"]) - set(grantor.get("required", ())) == {
        "caregiver_id", "legal_authority"}
    for answer in (whole, partial):
        assert answer_errors(document, "GET", "/api/v1/consents/{consent_id}", answer) == []


# -- what the document says of headers and races -------------------------------------------------


def test_a_key_whose_first_request_is_under_way_answers_a_documented_409(
        client, make, app, document, monkeypatch):
    """The claim of a key collides with another request's and that request's answer is not
    there (core/idempotency.py): 409 `conflict`, which every idempotent POST documents. Staged:
    the other claim committed, this request's look-up not seeing it, as under a race."""
    from core import idempotency
    from core.db import db

    organization = make.organization(name="Clinic", type="pediatric_primary_care")
    oauth_client, _ = make.client(organization)
    with app.app_context():
        db.session.add(idempotency.IdempotencyKey(
            id=str(uuid.uuid4()), client_id=str(oauth_client.id), key="k", request_hash="0" * 64,
            status=0, body="", headers={}, created_at=clock.now()))
        db.session.commit()
    monkeypatch.setattr(idempotency, "_stored", lambda client_id, key: None)
    family = {"child": {"given_name": "Zoe", "family_name": "Ng", "birth_date": "2025-05-01"},
              "caregivers": [{"given_name": "Lin", "family_name": "Ng",
                              "relationship": "mother"}]}

    answer = client.post("/api/v1/families", json=family, headers={
        **bearer(make.token(oauth_client=oauth_client)), "Idempotency-Key": "k"})

    assert answer.status_code == 409
    assert answer.json["type"] == "/problems/conflict"
    assert answer_errors(document, "POST", "/api/v1/families", answer) == []
    for path, operation in document["paths"].items():
        if any(p.get("name") == "Idempotency-Key" for p in operation.get("post", {}).get(
                "parameters", [])):
            assert "Idempotency-Key" in operation["post"]["responses"]["409"]["description"], \
                path


def test_the_etags_and_replays_are_described_as_answered(client, net, make, document):
    """A consent's ETag is `"v1"` as recorded (the description said "1"); a replayed send
    renders the referral as it reads now, which its key's description says (not "the first
    answer")."""
    consent = make.consent(net.family, [net.clinic, net.provider],
                           categories=("identity", "contact", "referral_reason"))
    read = client.get(f"/api/v1/consents/{consent.id}", headers=net.as_clinic)
    described = document["paths"]["/api/v1/consents/{consent_id}"]["get"]["responses"]["200"][
        "headers"]["ETag"]["description"]
    assert f"`{read.headers['ETag']}`" in described

    key = next(p for p in document["paths"]["/api/v1/referrals"]["post"]["parameters"]
               if p.get("name") == "Idempotency-Key")
    assert "as a read shows it now" in key["description"]
    sent = send(client, net, headers={**net.as_clinic, "Idempotency-Key": "send-1"})
    move(client, sent.json["id"], net.as_provider, sent.headers["ETag"], status="received")
    again = send(client, net, headers={**net.as_clinic, "Idempotency-Key": "send-1"})
    assert (again.status_code, again.json["status"]) == (201, "received")
