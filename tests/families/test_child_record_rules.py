"""Rules a family record keeps whole: it is a child's (a birth date at most 18 years ago,
none in the future), and it never says both not to contact the family and how to."""

from datetime import UTC, date, datetime, timedelta

import pytest

from core import time as clock
from tests.conftest import assert_validation_error, bearer

FAMILIES = "/api/v1/families"


def family_body(birth_date="2026-03-02") -> dict:
    return {
        "child": {"given_name": "Amara", "family_name": "Okafor", "birth_date": birth_date,
                  "county": "Washtenaw"},
        "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                        "relationship": "mother", "has_legal_authority": True}],
        "contact_preferences": {"do_not_contact": False, "methods": ["phone", "text"],
                                "best_times": "after 5pm"},
    }


@pytest.fixture(autouse=True)
def today():
    """The service's clock on one day: the bounds move with it."""
    clock.freeze(datetime(2026, 12, 8, 9, 30, tzinfo=UTC))
    yield date(2026, 12, 8)
    clock.freeze(None)


@pytest.fixture
def headers(make, today):
    organization = make.organization(name="Riverbend Infant Mental Health")
    return bearer(make.token(organization, ["families:read", "families:write"]))


@pytest.mark.parametrize("birth_date", ["0001-01-01", "1900-01-01", "1950-06-15",
                                        "2008-12-07"])
def test_a_birth_date_more_than_18_years_ago_is_422_naming_the_bound(client, headers, today,
                                                                     birth_date):
    """A caregiver's birth date in the child's field, a year typed as 1926 for 2026."""
    response = client.post(FAMILIES, json=family_body(birth_date), headers=headers)

    body = assert_validation_error(response, "child.birth_date")
    assert "2008-12-08" in body["errors"]["child.birth_date"][0]


@pytest.mark.parametrize("birth_date", ["2008-12-08", "2026-12-08"])
def test_the_bounds_of_a_birth_date_are_accepted(client, headers, today, birth_date):
    response = client.post(FAMILIES, json=family_body(birth_date), headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)


def test_a_birth_date_tomorrow_is_422(client, headers, today):
    tomorrow = (today + timedelta(days=1)).isoformat()
    response = client.post(FAMILIES, json=family_body(tomorrow), headers=headers)
    assert_validation_error(response, "child.birth_date")


def test_the_birth_date_bound_holds_on_a_patch(client, headers, today):
    posted = client.post(FAMILIES, json=family_body(), headers=headers).json
    response = client.patch(f"{FAMILIES}/{posted['id']}", headers=headers,
                            json={"child": {"birth_date": "1926-03-02"}})
    assert_validation_error(response, "child.birth_date")


def test_do_not_contact_with_contact_methods_is_refused(client, headers):
    """A provider reading the record could not tell which to honour."""
    body = family_body()
    body["contact_preferences"] = {"do_not_contact": True, "methods": ["phone", "text"],
                                   "best_times": "after 5pm"}

    response = client.post(FAMILIES, json=body, headers=headers)

    assert_validation_error(response, "contact_preferences.methods")
    assert client.get(FAMILIES, headers=headers).json["items"] == []


def test_do_not_contact_without_methods_is_kept(client, headers):
    body = family_body()
    body["contact_preferences"] = {"do_not_contact": True}

    response = client.post(FAMILIES, json=body, headers=headers)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["contact_preferences"] == {"do_not_contact": True, "methods": [],
                                                    "best_times": None}
