"""A PATCH of a family record changes what it sends and nothing else, down into `child`,
`contact_preferences` and each caregiver: a member left out stays, `null` erases a nullable
one, and no default resets what the partner did not mean to touch."""

import uuid

import pytest

from core.db import db
from families.models import Family
from tests.conftest import assert_problem, assert_validation_error, bearer

FAMILIES = "/api/v1/families"
RW = ["families:read", "families:write", "consent:read", "consent:write"]


def family_body(given_name="Amara", family_name="Okafor", birth_date="2026-03-02") -> dict:
    return {
        "child": {"given_name": given_name, "family_name": family_name,
                  "birth_date": birth_date, "county": "Washtenaw"},
        "caregivers": [
            {"given_name": "Ngozi", "family_name": "Okafor", "relationship": "mother",
             "has_legal_authority": True, "phone": "+17345550101",
             "email": "ngozi@example.org"},
            {"given_name": "Ada", "family_name": "Okafor", "relationship": "grandparent",
             "has_legal_authority": False, "phone": None, "email": None},
        ],
        "preferred_language": "es",
        "interpreter_needed": True,
        "cultural_considerations": "Igbo is spoken at home.",
        "contact_preferences": {"do_not_contact": False, "methods": ["phone", "text"],
                                "best_times": "after 5pm"},
    }


@pytest.fixture
def custodian(make):
    organization = make.organization(name="Riverbend Infant Mental Health")
    return organization, bearer(make.token(organization, RW))


def created(client, headers, body=None) -> dict:
    response = client.post(FAMILIES, json=body or family_body(), headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def stored(client, family_id):
    """The family's row with its caregivers, for the consent factory."""
    with client.application.app_context():
        family = db.session.get(Family, uuid.UUID(family_id))
        family.caregivers  # noqa: B018 (loaded while the session is open)
        return family


def url(family_id) -> str:
    return f"{FAMILIES}/{family_id}"


def patched(client, headers, family_id, changes) -> dict:
    response = client.patch(url(family_id), headers=headers, json=changes)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


# -- caregivers ----------------------------------------------------------------------------------


def test_patching_a_caregivers_phone_keeps_her_legal_authority(client, custodian):
    """A partner correcting the mother's phone, sending the members it means to change, must
    not find her stripped of legal authority: a member left out is not defaulted to false."""
    _, headers = custodian
    family = created(client, headers)
    mother, grandmother = family["caregivers"]

    after = patched(client, headers, family["id"], {"caregivers": [
        {"id": mother["id"], "phone": "+17345550199"}, {"id": grandmother["id"]}]})

    assert after["caregivers"][0] == mother | {"phone": "+17345550199"}
    assert after["caregivers"][1] == grandmother


def test_the_grantor_of_an_active_consent_keeps_legal_authority_across_a_patch(
        client, custodian, make):
    """Renaming the grantor of a consent in force leaves her the authority she granted with."""
    organization, headers = custodian
    partner = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")
    family = created(client, headers)
    mother, grandmother = family["caregivers"]
    make.consent(stored(client, family["id"]), [organization, partner])

    after = patched(client, headers, family["id"], {"caregivers": [
        {"id": mother["id"], "given_name": "Ngozi", "family_name": "Okafor-Eze",
         "relationship": "mother", "phone": "+17345550101", "email": "ngozi@example.org"},
        {"id": grandmother["id"]}]})

    assert after["caregivers"][0]["has_legal_authority"] is True
    assert after["caregivers"][0]["family_name"] == "Okafor-Eze"


def test_patching_a_caregivers_name_keeps_the_phone_and_email_not_sent(client, custodian):
    """Absent means unchanged; `null` is how a partner erases a phone."""
    _, headers = custodian
    body = family_body()
    body["caregivers"][1].update(phone="+17345550102", email="ada@example.org")
    family = created(client, headers, body)
    mother, grandmother = family["caregivers"]

    after = patched(client, headers, family["id"], {"caregivers": [
        {"id": mother["id"]},
        {"id": grandmother["id"], "family_name": "Okafor-Eze"}]})["caregivers"][1]

    assert (after["family_name"], after["phone"], after["email"]) == \
        ("Okafor-Eze", "+17345550102", "ada@example.org")


def test_null_erases_a_caregivers_phone_and_description(client, custodian):
    _, headers = custodian
    body = family_body()
    body["caregivers"][1].update(relationship="other", relationship_description="godmother")
    family = created(client, headers, body)
    mother, godmother = family["caregivers"]

    after = patched(client, headers, family["id"], {"caregivers": [
        {"id": mother["id"], "phone": None},
        {"id": godmother["id"], "relationship_description": None}]})["caregivers"]

    assert after[0] == mother | {"phone": None}
    assert after[1] == godmother | {"relationship_description": None}


@pytest.mark.parametrize("member", ["given_name", "family_name", "relationship",
                                    "has_legal_authority"])
def test_a_caregivers_required_member_cannot_be_erased(client, custodian, member):
    _, headers = custodian
    family = created(client, headers)
    before = client.get(url(family["id"]), headers=headers).json
    mother, grandmother = family["caregivers"]

    response = client.patch(url(family["id"]), headers=headers, json={"caregivers": [
        {"id": mother["id"], member: None}, {"id": grandmother["id"]}]})

    assert_validation_error(response, f"caregivers.0.{member}")
    assert client.get(url(family["id"]), headers=headers).json == before


def test_a_new_caregiver_in_a_patch_is_validated_as_on_create(client, custodian):
    """Without an `id`, an item is a new caregiver: its names and relationship are required,
    and its legal authority is false unless given."""
    _, headers = custodian
    family = created(client, headers)
    mother, grandmother = family["caregivers"]

    incomplete = client.patch(url(family["id"]), headers=headers, json={"caregivers": [
        {"id": mother["id"]}, {"id": grandmother["id"]}, {"given_name": "Emeka"}]})
    assert_validation_error(incomplete, "caregivers.2.family_name",
                            "caregivers.2.relationship")

    after = patched(client, headers, family["id"], {"caregivers": [
        {"id": mother["id"]}, {"id": grandmother["id"]},
        {"given_name": "Emeka", "family_name": "Okafor", "relationship": "father"}]})
    father = after["caregivers"][2]
    assert father["id"] not in (mother["id"], grandmother["id"])
    assert {k: v for k, v in father.items() if k != "id"} == {
        "given_name": "Emeka", "family_name": "Okafor", "relationship": "father",
        "relationship_description": None, "has_legal_authority": False, "phone": None,
        "email": None}


def test_removing_a_consents_grantor_is_still_409(client, custodian, make):
    organization, headers = custodian
    partner = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")
    family = created(client, headers)
    make.consent(stored(client, family["id"]), [organization, partner])

    response = client.patch(url(family["id"]), headers=headers,
                            json={"caregivers": [{"id": family["caregivers"][1]["id"]}]})

    assert_problem(response, 409, "conflict")


# -- nested objects -----------------------------------------------------------------------------


def test_patching_best_times_keeps_a_do_not_contact_wish(client, custodian):
    """The family asked not to be contacted; noting better times must not reset the wish."""
    _, headers = custodian
    body = family_body()
    body["contact_preferences"] = {"do_not_contact": True, "methods": [], "best_times": None}
    family = created(client, headers, body)

    after = patched(client, headers, family["id"],
                    {"contact_preferences": {"best_times": "weekday mornings"}})

    assert after["contact_preferences"] == {"do_not_contact": True, "methods": [],
                                            "best_times": "weekday mornings"}


def test_a_patch_that_would_contradict_do_not_contact_is_refused(client, custodian):
    """Checked on the record as the PATCH would leave it: methods added to a family that asked
    not to be contacted, or the wish set while methods stay."""
    _, headers = custodian
    body = family_body()
    body["contact_preferences"] = {"do_not_contact": True, "methods": [], "best_times": None}
    quiet = created(client, headers, body)
    reachable = created(client, headers, family_body(given_name="Bola"))

    adding = client.patch(url(quiet["id"]), headers=headers,
                          json={"contact_preferences": {"methods": ["phone"]}})
    wishing = client.patch(url(reachable["id"]), headers=headers,
                           json={"contact_preferences": {"do_not_contact": True}})
    both = patched(client, headers, reachable["id"],
                   {"contact_preferences": {"do_not_contact": True, "methods": []}})

    assert_validation_error(adding, "contact_preferences.methods")
    assert_validation_error(wishing, "contact_preferences.methods")
    assert both["contact_preferences"]["do_not_contact"] is True


def test_patching_the_childs_name_keeps_the_county_not_sent(client, custodian):
    _, headers = custodian
    family = created(client, headers)

    after = patched(client, headers, family["id"], {"child": {"given_name": "Amarachi"}})

    assert after["child"] == {"given_name": "Amarachi", "family_name": "Okafor",
                              "birth_date": "2026-03-02", "county": "Washtenaw"}


def test_null_erases_the_county_and_not_the_childs_name(client, custodian):
    _, headers = custodian
    family = created(client, headers)

    erased = patched(client, headers, family["id"], {"child": {"county": None}})
    refused = client.patch(url(family["id"]), headers=headers,
                           json={"child": {"given_name": None}})

    assert erased["child"]["county"] is None
    assert_validation_error(refused, "child.given_name")


# -- versions -----------------------------------------------------------------------------------


def test_a_patch_that_changes_nothing_keeps_the_version(client, custodian):
    """Sending the record's caregivers back unchanged is not a new version."""
    _, headers = custodian
    family = created(client, headers)
    etag = client.get(url(family["id"]), headers=headers).headers["ETag"]

    response = client.patch(url(family["id"]), headers=headers,
                            json={"caregivers": family["caregivers"],
                                  "child": {"given_name": "Amara"},
                                  "contact_preferences": {"methods": ["phone", "text"]},
                                  "preferred_language": "es"})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["ETag"] == etag


def test_etag_after_patch_is_what_every_viewer_reads(client, custodian, make):
    """The PATCH's ETag is the one a following GET returns, the custodian's and a consented
    partner's alike; a stale one is then 412."""
    organization, headers = custodian
    partner = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")
    partner_headers = bearer(make.token(partner, ["families:read"]))
    family = created(client, headers)
    make.consent(stored(client, family["id"]), [organization, partner],
                 categories=("identity",))
    first = client.get(url(family["id"]), headers=headers).headers["ETag"]

    changed = client.patch(url(family["id"]), json={"preferred_language": "en"},
                           headers=headers | {"If-Match": first})
    assert changed.status_code == 200
    mine = client.get(url(family["id"]), headers=headers)
    theirs = client.get(url(family["id"]), headers=partner_headers)
    assert changed.headers["ETag"] == mine.headers["ETag"] == theirs.headers["ETag"] != first
    assert theirs.json["redacted"] == ["contact"]
    stale = client.patch(url(family["id"]), json={"preferred_language": "fr"},
                         headers=headers | {"If-Match": first})
    assert_problem(stale, 412, "precondition-failed")
