"""What the directory keeps of what an organization sends for its listing, and how the
filters read what a referrer sends: counties stripped and once, language tags well-formed and
in canonical case, names and `q` compared in one Unicode form."""

import unicodedata

import pytest

from tests.conftest import assert_problem, assert_validation_error, audit_events, bearer

ORGS = "/api/v1/organizations"


def names(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["name"] for item in response.json["items"]]


@pytest.fixture
def me(make):
    organization = make.organization(name="Riverbend Infant Mental Health",
                                     counties=("Washtenaw",), languages=("en",))
    token = make.token(organization, ["directory:read", "directory:write"])
    return organization, bearer(token)


# -- counties -----------------------------------------------------------------------------------


def test_a_county_patched_with_a_stray_space_is_found_by_the_county_filter(client, me):
    """A provider's system sends its counties as typed (`"Wayne "`); a referrer looking for
    providers in Wayne must find it, whatever spaces either side sent."""
    organization, headers = me
    response = client.patch(f"{ORGS}/{organization.id}", headers=headers,
                            json={"counties": ["Washtenaw", " Wayne "]})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["counties"] == ["Washtenaw", "Wayne"]

    for county in ("Wayne", " wayne\t"):
        found = client.get(ORGS, query_string={"county": county}, headers=headers)
        assert names(found) == [organization.name]


@pytest.mark.parametrize("counties", [["Wayne", "Wayne "], ["Wayne", " wayne"],
                                      [unicodedata.normalize("NFC", "Saint-Ignace Ménard"),
                                       unicodedata.normalize("NFD", "Saint-Ignace Ménard")]])
def test_the_same_county_twice_is_refused(client, me, counties):
    """The same county, case, spaces and Unicode form aside, as other duplicates are."""
    organization, headers = me

    response = client.patch(f"{ORGS}/{organization.id}", headers=headers,
                            json={"counties": counties})

    assert_validation_error(response, "counties")


@pytest.mark.parametrize("county", ["Wayne\n", "Way\nne", "\u200b"])
def test_a_county_is_one_visible_line(client, me, county):
    organization, headers = me
    response = client.patch(f"{ORGS}/{organization.id}", headers=headers,
                            json={"counties": [county]})
    assert_validation_error(response, "counties.0")


# -- names and q --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize("query", ["clínica", " CLÍNICA FAMILIAR ", "ínica"])
def test_q_finds_a_name_whatever_its_unicode_form(client, make, form, query):
    """A partner searching from a system that sends decomposed text (NFD) finds "Clínica
    Familiar" (NFC), and a name stored decomposed is found by a composed `q`."""
    organization = make.organization(name=unicodedata.normalize(form, "Clínica Familiar"))
    headers = bearer(make.token(organization, ["directory:read"]))

    for sent in ("NFC", "NFD"):
        response = client.get(ORGS, headers=headers,
                              query_string={"q": unicodedata.normalize(sent, query)})
        assert [unicodedata.normalize("NFC", n) for n in names(response)] == \
            ["Clínica Familiar"]


@pytest.mark.parametrize("q, found", [
    ("clinica", True), ("CLÍNICA", True), ("nino", True), ("Nin\u0303o", True),
    ("clínica familiar del niño", True), ("clinico", False), ("nina", False),
])
def test_q_folds_case_and_accents(client, make, q, found):
    """A search typed without accents (a keyboard without them, a name heard on the phone)
    finds the name with them, and one with them finds it too, composed or decomposed; other
    letters still differ."""
    organization = make.organization(name="Clínica Familiar del Niño")
    headers = bearer(make.token(organization, ["directory:read"]))

    response = client.get(ORGS, query_string={"q": q}, headers=headers)

    assert names(response) == (["Clínica Familiar del Niño"] if found else [])


# -- languages ----------------------------------------------------------------------------------


def test_languages_are_listed_in_their_canonical_case(client, me):
    """RFC 5646 2.1.1: a partner matching a family's `es-MX` against a provider's listed
    languages by string finds it when the listing sent `ES-mx`."""
    organization, headers = me

    response = client.patch(f"{ORGS}/{organization.id}", headers=headers,
                            json={"languages": ["EN", "ES-mx", "ZH-hant", "x-Klingon"]})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["languages"] == ["en", "es-MX", "zh-Hant", "x-klingon"]
    assert client.get(f"{ORGS}/{organization.id}", headers=headers).json["languages"] == \
        ["en", "es-MX", "zh-Hant", "x-klingon"]


@pytest.mark.parametrize("language", ["ES-mx", "es", "ES"])
def test_the_language_filter_takes_any_case(client, make, language):
    provider = make.organization(name="Clínica Familiar", languages=("es-MX",))
    headers = bearer(make.token(provider, ["directory:read"]))

    assert names(client.get(ORGS, headers=headers, query_string={"language": language})) == \
        ["Clínica Familiar"]


@pytest.mark.parametrize("languages", [["en", "es\n"], ["en-12"], ["es-MX-MX"],
                                       ["de-1901-1901"]])
def test_an_ill_formed_language_is_refused(client, me, languages):
    """`$` let "es\\n" through, and a provider listing it was no longer found by `es`."""
    organization, headers = me

    response = client.patch(f"{ORGS}/{organization.id}", headers=headers,
                            json={"languages": languages})

    assert_validation_error(response, f"languages.{len(languages) - 1}")


@pytest.mark.parametrize("language", ["es\n", "en-12"])
def test_the_language_filter_refuses_an_ill_formed_tag(client, me, language):
    _, headers = me
    response = client.get(ORGS, headers=headers, query_string={"language": language})
    assert_validation_error(response, "language")


# -- the rest of the listing --------------------------------------------------------------------


def test_patching_another_organizations_listing_is_an_audit_event(app, client, make, me):
    """A refusal of an authenticated organization is an audit event naming the listing it
    tried to change."""
    organization, headers = me
    victim = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")

    response = client.patch(f"{ORGS}/{victim.id}", headers=headers,
                            json={"accepting_referrals": True})

    assert_problem(response, 403, "forbidden")
    with app.app_context():
        events = audit_events(organization_id=organization.id, outcome="deny")
        assert [(e.action, e.resource_type, str(e.resource_id)) for e in events] == [
            ("update", "organization", str(victim.id))]


@pytest.mark.parametrize("capacity", [
    {"status": "waitlist", "waitlist": "1_3_months", "updated_at": "2020-01-01T00:00:00Z"},
    {"status": "full", "waitlist": "unknown"},
    {"status": "closed"},
])
def test_capacity_input_is_checked(client, me, capacity):
    """`updated_at` is the service's; a waitlist length only with `waitlist`."""
    organization, headers = me
    response = client.patch(f"{ORGS}/{organization.id}", headers=headers,
                            json={"capacity": capacity})
    assert_problem(response, 422, "validation-error")


def test_combined_filters_narrow_together(client, make):
    """type, county, language, accepting_referrals and q together."""
    wanted = make.organization(name="Riverbend Infant Mental Health", counties=("Wayne",),
                               languages=("es-MX",), accepting_referrals=True)
    make.organization(name="Riverbend Pediatrics", type="pediatric_primary_care",
                      counties=("Wayne",), languages=("es",), accepting_referrals=True)
    make.organization(name="Riverside IMH", counties=("Wayne",), languages=("es",),
                      accepting_referrals=False)
    headers = bearer(make.token(wanted, ["directory:read"]))
    response = client.get(ORGS, headers=headers, query_string={
        "type": "imh_provider", "county": "wayne", "language": "es",
        "accepting_referrals": "true", "q": "RIVER"})
    assert names(response) == [wanted.name]
