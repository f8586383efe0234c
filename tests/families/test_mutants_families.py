"""Behaviour of families/service.py that a mutation review found no test pinned down: each
test here failed against one hand-made mutant of the service and passes on it as written
(see the docstrings for which)."""

from families.service import create_family
from tests.conftest import _ActorOf, assert_problem
from tests.referrals.conftest import network


def test_removing_the_caregiver_who_revoked_a_consent_is_409(client, make):
    """A caregiver who asked for a consent's revocation (not its grantor) is named by the
    consent record, as its grantor is: removing them from the family record is 409 and
    changes nothing (mutant: only grantors kept)."""
    net = network(make)
    caregivers = [
        {"given_name": "Ngozi", "family_name": "Okafor", "relationship": "mother",
         "has_legal_authority": True, "phone": "+17345550101", "email": None},
        {"given_name": "Emeka", "family_name": "Okafor", "relationship": "father",
         "has_legal_authority": True, "phone": None, "email": None}]
    family = make.family(net.clinic, caregivers=caregivers)
    mother, father = (c.id for c in family.caregivers)
    consent = make.consent(family, [net.clinic, net.provider])  # granted by the mother
    revoked = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
                          json={"reason": "The father asked.", "requested_by": "caregiver",
                                "caregiver_id": str(father)})
    assert revoked.status_code == 200, revoked.json

    before = client.get(f"/api/v1/families/{family.id}", headers=net.as_clinic)
    response = client.patch(f"/api/v1/families/{family.id}", headers=net.as_clinic,
                            json={"caregivers": [{"id": str(mother)}]})

    assert_problem(response, 409, "conflict")
    after = client.get(f"/api/v1/families/{family.id}", headers=net.as_clinic)
    assert after.headers["ETag"] == before.headers["ETag"]
    assert [c["id"] for c in after.json["caregivers"]] == [str(mother), str(father)]


def test_a_duplicate_is_found_whatever_spaces_surround_a_name_the_service_is_given(
        app, make):
    """The API strips the names it loads; the service still compares them trimmed, so a
    record that reaches it with spaces around the child's names (not through the API's
    schemas) is warned of the same child already held (mutant: names compared untrimmed)."""
    clinic = make.organization(name="Washtenaw Pediatrics", type="pediatric_primary_care")
    held = make.family(clinic)  # Amara Okafor, born 2026-03-02
    data = {"child": {"given_name": "  Amara ", "family_name": "Okafor  ",
                      "birth_date": held.child_birth_date, "county": "Washtenaw"},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                            "relationship": "mother", "has_legal_authority": True}]}
    with app.app_context():
        _, warnings = create_family(_ActorOf(clinic), data=data)
    assert [(w["code"], w["family_ids"]) for w in warnings] == [
        ("possible_duplicate", [held.id])]
