"""What a family record keeps of the text and language tags a partner sends: one Unicode form
(NFC), one-line fields stripped and without line breaks, something visible in every name,
patterns that match the whole value, well-formed BCP 47 tags in their canonical case, and a
caregiver's relationship in the family's own words."""

import unicodedata
import uuid

import pytest

from core.db import db
from families.models import Family
from tests.conftest import assert_problem, bearer

FAMILIES = "/api/v1/families"
RW = ["families:read", "families:write"]


def family_body(given_name="Amara", family_name="Okafor") -> dict:
    return {
        "child": {"given_name": given_name, "family_name": family_name,
                  "birth_date": "2026-03-02", "county": "Washtenaw"},
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
def headers(make):
    organization = make.organization(name="Riverbend Infant Mental Health")
    return bearer(make.token(organization, RW))


def created(client, headers, body) -> dict:
    response = client.post(FAMILIES, json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def refused_at(client, headers, body) -> set[str]:
    return set(assert_problem(client.post(FAMILIES, json=body, headers=headers), 422,
                              "validation-error")["errors"])


# -- Unicode and whitespace ---------------------------------------------------------------------


def test_names_are_stored_without_surrounding_spaces(client, headers):
    """A stray space typed around a name is not part of it."""
    body = family_body(given_name="  Amara ", family_name=" Okafor")
    body["caregivers"][0]["given_name"] = "Ngozi\u00a0 "
    body["child"]["county"] = " Washtenaw\t"
    body["contact_preferences"]["best_times"] = " after 5pm "

    document = created(client, headers, body)

    assert document["child"] == {"given_name": "Amara", "family_name": "Okafor",
                                 "birth_date": "2026-03-02", "county": "Washtenaw"}
    assert document["caregivers"][0]["given_name"] == "Ngozi"
    assert document["contact_preferences"]["best_times"] == "after 5pm"


def test_text_is_stored_in_one_unicode_form(client, headers):
    """NFC whatever the partner's keyboard sent, so another system comparing names meets one
    spelling; free text keeps its line breaks."""
    body = family_body(given_name=unicodedata.normalize("NFD", "José"),
                       family_name=unicodedata.normalize("NFD", "Núñez"))
    body["cultural_considerations"] = unicodedata.normalize(
        "NFD", "Abuela habla español.\nPrefer visits at home.\n")

    document = created(client, headers, body)

    assert document["child"]["given_name"] == unicodedata.normalize("NFC", "José")
    assert document["child"]["family_name"] == unicodedata.normalize("NFC", "Núñez")
    assert document["cultural_considerations"] == unicodedata.normalize(
        "NFC", "Abuela habla español.\nPrefer visits at home.\n")


@pytest.mark.parametrize("name", ["\u200b", "\u200b\u200b\u200b", "\ufeff", "\u2800",
                                  "\u200d\u2060", " \u3164 ", "\u00a0"])
def test_an_invisible_name_is_refused(client, headers, name):
    """A zero-width space, word joiner, byte-order mark, braille blank or Hangul filler is as
    blank to the people reading the record as whitespace is."""
    assert "child.given_name" in refused_at(client, headers, family_body(given_name=name))


@pytest.mark.parametrize("path", ["child.given_name", "child.family_name", "child.county",
                                  "caregivers.0.given_name", "caregivers.0.family_name",
                                  "caregivers.0.relationship_description",
                                  "contact_preferences.best_times"])
@pytest.mark.parametrize("value", ["Amara\nOkafor", "Amara\r\nOkafor", "Amara\n",
                                   "Amara\u2028Okafor"])
def test_a_line_break_in_a_one_line_field_is_refused(client, headers, path, value):
    """Names, the county and `best_times` are one line: a line break breaks every letter,
    label and export a partner prints from the record."""
    body = family_body()
    section, *rest = path.split(".")
    target = body[section] if section != "caregivers" else body["caregivers"][0]
    target[rest[-1]] = value

    assert refused_at(client, headers, body) == {path}


@pytest.mark.parametrize(("given", "family"), [("Amara", "Ọkafọ"), ("阿玛拉", "王"),
                                               ("Nguyễn", "Thị Ánh"), ("O'Brien-Núñez", "D'Arcy"),
                                               ("Ngũgĩ", "wa Thiong'o"), ("Ахмед", "Хасанов")])
def test_names_in_any_script_are_kept_exactly(client, headers, given, family):
    document = created(client, headers, family_body(given_name=given, family_name=family))
    read = client.get(f"{FAMILIES}/{document['id']}", headers=headers).json
    assert (read["child"]["given_name"], read["child"]["family_name"]) == (given, family)


def test_a_name_is_bounded_as_sent(client, headers):
    """100 characters as the OpenAPI document says, surrounding spaces included."""
    assert created(client, headers, family_body(given_name="x" * 100))
    assert "child.given_name" in refused_at(client, headers,
                                            family_body(given_name=" " + "x" * 100))


# -- whole-value patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "value"), [
    ("phone", "+17345550101\n"),
    ("phone", "+123456789012345\n"),  # 17 characters: the column holds 16
    ("email", "ngozi@example.org\n"),
])
def test_a_caregivers_contact_with_a_trailing_line_break_is_refused(client, headers, path,
                                                                    value):
    """`$` in a pattern matches before a final line break: the whole value must match."""
    body = family_body()
    body["caregivers"][0][path] = value

    assert refused_at(client, headers, body) == {f"caregivers.0.{path}"}


# -- language tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "kept"), [
    ("en-US-x-twain", "en-US-x-twain"), ("x-klingon", "x-klingon"),
    ("es-419-u-nu-latn", "es-419-u-nu-latn"), ("zh-cmn-Hans-CN", "zh-cmn-Hans-CN"),
    ("sr-Latn-RS", "sr-Latn-RS"), ("hmn", "hmn"), ("de-CH-1901", "de-CH-1901"),
    ("ES-mx", "es-MX"), ("ZH-hant", "zh-Hant"), ("i-klingon", "i-klingon"),
    ("EN-gb-OED", "en-GB-oed"), ("az-latn-X-LATN", "az-Latn-x-latn"),
    ("en-a-bbb-x-a-ccc", "en-a-bbb-x-a-ccc"), ("sl-rozaj-biske", "sl-rozaj-biske"),
])
def test_well_formed_bcp47_tags_are_accepted_in_canonical_case(client, headers, tag, kept):
    """RFC 5646 well-formed tags, private use and extensions included, kept in the canonical
    case of 2.1.1 so that a partner comparing tags as strings meets one spelling."""
    body = family_body()
    body["preferred_language"] = tag

    assert created(client, headers, body)["preferred_language"] == kept


@pytest.mark.parametrize("tag", ["en-12", "es-MX-MX", "ab-cd-ef-gh", "es\n", "en_US",
                                 "de-1901-1901", "en-a-bbb-a-ccc", "x", "en-", "-en",
                                 "e\u017f-MX", "en-x", "toolonglang"])
def test_ill_formed_bcp47_tags_are_refused(client, headers, tag):
    """Not well-formed: a two-digit region, a region twice, three regions, a line break, an
    underscore, a repeated variant (2.2.5) or singleton (2.2.6), a long s that upper-cases
    to ASCII, ..."""
    body = family_body()
    body["preferred_language"] = tag

    assert refused_at(client, headers, body) == {"preferred_language"}


# -- relationship in the family's words ---------------------------------------------------------


def test_a_relationship_can_be_said_in_the_familys_words(client, headers):
    """An aunt, a father's partner, a godmother: the code and, beside it, who she is."""
    body = family_body()
    body["caregivers"][1].update(relationship="other",
                                 relationship_description=" godmother ")
    body["caregivers"][0]["relationship_description"] = "birth mother"

    document = created(client, headers, body)

    assert [c["relationship_description"] for c in document["caregivers"]] == \
        ["birth mother", "godmother"]


def test_a_relationship_description_is_identity(client, headers, make):
    """Declared like the other caregiver fields: a partner allowed `contact` only sees none."""
    custodian = make.organization(name="Riverbend Infant Mental Health 2")
    custodian_headers = bearer(make.token(custodian, RW))
    partner = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")
    body = family_body()
    body["caregivers"][1].update(relationship="other", relationship_description="godmother")
    document = created(client, custodian_headers, body)
    with client.application.app_context():
        family = db.session.get(Family, uuid.UUID(document["id"]))
        family.caregivers  # noqa: B018 (loaded while the session is open)
    make.consent(family, [custodian, partner], categories=("contact",))

    seen = client.get(f"{FAMILIES}/{document['id']}",
                      headers=bearer(make.token(partner, ["families:read"])))

    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert seen.json["redacted"] == ["identity"]
    assert all("relationship_description" not in c for c in seen.json["caregivers"])


def test_a_relationship_description_is_bounded(client, headers):
    body = family_body()
    body["caregivers"][1]["relationship_description"] = "x" * 201
    assert refused_at(client, headers, body) == {"caregivers.1.relationship_description"}
