"""Family records through HTTP, as a partner agency uses them: recording a family (and the
duplicate warning that never crosses organizations), listing one's own families in keyset pages,
reading one's own record whole, changing it under optimistic concurrency with the caregivers
list semantics, and every refusal: bad input, strangers, partners under consent, wrong scopes."""

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from auth.scopes import SCOPES
from core import time as clock
from tests.conftest import assert_problem, assert_validation_error, audit_events, bearer

FAMILY_KEYS = {"id", "custodian_organization_id", "child", "caregivers", "preferred_language",
               "interpreter_needed", "cultural_considerations", "contact_preferences",
               "redacted", "updated_at"}
CAREGIVER_KEYS = {"id", "given_name", "family_name", "relationship", "relationship_description",
                  "has_legal_authority", "phone", "email"}
T0 = datetime(2026, 9, 1, 14, 5, 9, 123456, tzinfo=UTC)
FAMILIES = "/api/v1/families"
RW = ["families:read", "families:write"]


# -- helpers --------------------------------------------------------------------------------------






def family_body(given_name="Amara", family_name="Okafor", birth_date="2026-03-02") -> dict:
    """A complete, valid family as a partner posts it."""
    return {
        "child": {"given_name": given_name, "family_name": family_name,
                  "birth_date": birth_date, "county": "Washtenaw"},
        "caregivers": [
            {"given_name": "Ngozi", "family_name": "Okafor", "relationship": "mother",
             "relationship_description": None, "has_legal_authority": True,
             "phone": "+17345550101", "email": "ngozi@example.org"},
            {"given_name": "Ada", "family_name": "Okafor", "relationship": "grandparent",
             "relationship_description": None, "has_legal_authority": False, "phone": None,
             "email": None},
        ],
        "preferred_language": "es",
        "interpreter_needed": True,
        "cultural_considerations": "Grandmother raises the baby with the mother; "
                                   "Igbo is spoken at home.",
        "contact_preferences": {"do_not_contact": False, "methods": ["phone", "text"],
                                "best_times": "after 5pm"},
    }


def without_ids(caregivers: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "id"} for c in caregivers]


def family_url(family_id) -> str:
    return f"{FAMILIES}/{family_id}"


@pytest.fixture
def agency(make):
    """agency(name, scopes=RW) -> (organization, headers with a bearer token of its own)."""

    def build(name, scopes=RW, type="imh_provider", lifetime=3600):
        organization = make.organization(name=name, type=type)
        return organization, bearer(make.token(organization, scopes, lifetime=lifetime))

    return build


@pytest.fixture
def custodian(agency):
    return agency("Riverbend Infant Mental Health")


@pytest.fixture
def other(agency):
    return agency("Lakeshore Pediatrics", type="pediatric_primary_care")


def post_family(client, headers, body=None):
    return client.post(FAMILIES, json=family_body() if body is None else body, headers=headers)


def created(client, headers, body=None) -> dict:
    response = post_family(client, headers, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def list_ids(client, headers, **query) -> list[str]:
    response = client.get(FAMILIES, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json.keys() == {"items", "next_cursor"}
    return [item["id"] for item in response.json["items"]]


def read(client, headers, family_id):
    response = client.get(family_url(family_id), headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json, response.headers["ETag"]


def record_of(response) -> dict:
    """A PATCH's answer without its `warnings`: the record as a read shows it."""
    assert response.json["warnings"] == [], response.json["warnings"]
    return {k: v for k, v in response.json.items() if k != "warnings"}


def ids_of(family) -> list[str]:
    return [str(c.id) for c in family.caregivers]


# -- POST /api/v1/families -----------------------------------------------------------------------


def test_create_answers_201_with_location_etag_and_the_whole_record(client, custodian):
    organization, headers = custodian
    body = family_body()

    response = post_family(client, headers, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    document = response.json
    assert document.keys() == FAMILY_KEYS | {"warnings"}
    family_id = document["id"]
    assert str(uuid.UUID(family_id)) == family_id
    assert response.headers["Location"] == f"/api/v1/families/{family_id}"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2  # strong, not W/
    assert document["custodian_organization_id"] == str(organization.id)
    assert document["warnings"] == []
    assert document["redacted"] == []
    assert document["child"] == body["child"]
    assert without_ids(document["caregivers"]) == body["caregivers"]
    caregiver_ids = [c["id"] for c in document["caregivers"]]
    assert all(str(uuid.UUID(i)) == i for i in caregiver_ids)
    assert len(set(caregiver_ids)) == 2
    for field in ("preferred_language", "interpreter_needed", "cultural_considerations",
                  "contact_preferences"):
        assert document[field] == body[field]

    # What the Location names reads back the same, with the same version.
    again = client.get(response.headers["Location"], headers=headers)
    assert again.status_code == 200
    assert again.json == {k: v for k, v in document.items() if k != "warnings"}
    assert again.headers["ETag"] == etag


def test_optional_fields_take_their_defaults(client, custodian):
    _, headers = custodian
    body = family_body()
    for field in ("preferred_language", "interpreter_needed", "cultural_considerations",
                  "contact_preferences"):
        del body[field]
    del body["caregivers"][0]["has_legal_authority"]

    document = created(client, headers, body)

    assert document["caregivers"][0]["has_legal_authority"] is False
    assert document["interpreter_needed"] is False
    assert document["warnings"] == []


@pytest.mark.parametrize(("given", "family"), [
    ("Amara", "Okafor"),
    ("AMARA", "okafor"),
    ("aMaRa", "OKAFOR"),
    ("Amara ", " Okafor"),
])
def test_same_child_again_at_the_same_organization_warns_of_a_duplicate(
        client, custodian, given, family):
    _, headers = custodian
    first = created(client, headers, family_body("Amara", "Okafor"))

    response = post_family(client, headers, family_body(given, family))

    assert response.status_code == 201  # a warning, not a refusal: both are stored
    warnings = response.json["warnings"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["code"] == "possible_duplicate"
    assert warnings[0]["family_ids"] == [first["id"]]
    assert isinstance(warnings[0]["detail"], str) and warnings[0]["detail"]
    assert list_ids(client, headers) == [response.json["id"], first["id"]]


def test_a_duplicate_warning_names_every_earlier_match(client, custodian):
    _, headers = custodian
    first = created(client, headers)
    second = created(client, headers)

    third = created(client, headers)

    assert len(third["warnings"]) == 1
    assert sorted(third["warnings"][0]["family_ids"]) == sorted([first["id"], second["id"]])


def test_a_duplicate_warning_names_the_newest_matches_only(client, custodian):
    from families.service import DUPLICATES_NAMED

    _, headers = custodian
    earlier = [created(client, headers)["id"] for _ in range(DUPLICATES_NAMED + 2)]

    latest = created(client, headers)

    assert len(latest["warnings"][0]["family_ids"]) == DUPLICATES_NAMED
    assert set(latest["warnings"][0]["family_ids"]) <= set(earlier)
    assert earlier[-1] in latest["warnings"][0]["family_ids"]


def test_non_ascii_names_match_case_insensitively(client, custodian):
    _, headers = custodian
    first = created(client, headers, family_body("Élodie", "Çelik"))

    second = created(client, headers, family_body("ÉLODIE", "çELIK"))

    assert [w["family_ids"] for w in second["warnings"]] == [[first["id"]]]


@pytest.mark.parametrize(("given", "family"), [
    ("ΝΙΚΟΛΑΟΣ", "ΠΑΠΑΣ"),  # Greek in capitals: SQL lower() and Python's differ on the sigma
    ("İLAYDA", "YILDIZ"),  # Turkish dotted capital I: they differ there too
])
def test_the_same_spelling_twice_is_a_duplicate_on_every_database(
        client, custodian, given, family):
    """Both names are folded the same way, whatever the database's own lower() does."""
    _, headers = custodian
    first = created(client, headers, family_body(given, family))

    second = created(client, headers, family_body(given, family))

    assert [w["family_ids"] for w in second["warnings"]] == [[first["id"]]]


@pytest.mark.parametrize("changed", [
    {"birth_date": "2026-03-03"},
    {"given_name": "Amira"},
    {"family_name": "Okafor-Eze"},
])
def test_a_different_child_gets_no_warning(client, custodian, changed):
    _, headers = custodian
    created(client, headers)
    body = family_body()
    body["child"].update(changed)

    assert created(client, headers, body)["warnings"] == []


def test_another_organization_recording_the_same_child_gets_no_warning_and_no_id(
        client, custodian, other):
    _, headers = custodian
    _, other_headers = other
    first = created(client, headers)

    response = post_family(client, other_headers)

    assert response.status_code == 201
    assert response.json["warnings"] == []
    assert first["id"] not in response.get_data(as_text=True)
    assert first["id"] not in str(dict(response.headers))
    listing = client.get(FAMILIES, headers=other_headers)
    assert first["id"] not in listing.get_data(as_text=True)
    assert [i["id"] for i in listing.json["items"]] == [response.json["id"]]

    # The first organization recording the child again is warned of its own record only.
    again = created(client, headers)
    assert [w["family_ids"] for w in again["warnings"]] == [[first["id"]]]
    # And the second one, of its own.
    other_again = created(client, other_headers)
    assert [w["family_ids"] for w in other_again["warnings"]] == [[response.json["id"]]]
    assert first["id"] not in str(other_again)


def test_new_caregivers_take_no_ids_on_post(client, custodian):
    _, headers = custodian
    body = family_body()
    body["caregivers"][0]["id"] = str(uuid.uuid4())

    assert_validation_error(post_family(client, headers, body), "caregivers.0.id")
    assert list_ids(client, headers) == []


@pytest.mark.parametrize("retry", ["same body", "different body"])
def test_a_retry_with_the_same_idempotency_key(client, custodian, retry):
    _, headers = custodian
    keyed = headers | {"Idempotency-Key": "intake-2026-0042"}
    first = post_family(client, keyed)
    assert first.status_code == 201

    if retry == "same body":
        again = post_family(client, keyed)
        assert again.status_code == 201
        assert again.json == first.json
        assert again.headers["Location"] == first.headers["Location"]
    else:
        again = post_family(client, keyed, family_body("Bola"))
        assert_problem(again, 422, "idempotency-key-reused")
    assert list_ids(client, headers) == [first.json["id"]]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/json-patch+json"])
def test_a_retry_under_an_idempotency_key_is_still_json_only(client, custodian, content_type):
    """The same bytes under the same key but not sent as application/json are 415, as without
    a key: a replay answers only a request the route would take."""
    _, headers = custodian
    keyed = headers | {"Idempotency-Key": "intake-0042"}
    raw = json.dumps(family_body())
    first = client.post(FAMILIES, data=raw, headers=keyed | {"Content-Type": "application/json"})
    assert first.status_code == 201
    if content_type is not None:
        keyed |= {"Content-Type": content_type}

    again = client.post(FAMILIES, data=raw, headers=keyed)

    assert_problem(again, 415, "unsupported-media-type")


@pytest.mark.parametrize("key", ["", " ", "a" * 256, "ключ", "a b"])
def test_an_idempotency_key_is_1_to_255_visible_ascii_characters(client, custodian, key):
    _, headers = custodian

    response = post_family(client, headers | {"Idempotency-Key": key})

    assert_validation_error(response, "Idempotency-Key")
    assert list_ids(client, headers) == []


def test_an_idempotency_key_answers_again_for_a_day_and_only_with_the_scope(client, make):
    """A token of the same client without `families:write` is refused, not answered from
    storage; 24 hours on, the key is free again and makes a new family."""
    organization = make.organization()
    oauth_client, _ = make.client(organization)
    token = make.token(oauth_client=oauth_client, scopes=RW, lifetime=3 * 86400)
    keyed = bearer(token) | {"Idempotency-Key": "k-1"}
    first = post_family(client, keyed)
    assert first.status_code == 201
    narrow = make.token(oauth_client=oauth_client, scopes=("families:read",))

    refused = post_family(client, bearer(narrow) | {"Idempotency-Key": "k-1"})

    assert_problem(refused, 403, "insufficient-scope")
    clock.freeze(clock.now() + timedelta(hours=24, seconds=1))
    try:
        late = post_family(client, keyed)
    finally:
        clock.freeze(None)
    assert late.status_code == 201 and "Idempotent-Replayed" not in late.headers
    assert late.json["id"] != first.json["id"]


def test_idempotency_keys_of_different_clients_never_collide(client, custodian, other):
    first = post_family(client, custodian[1] | {"Idempotency-Key": "k-1"})
    second = post_family(client, other[1] | {"Idempotency-Key": "k-1"})

    assert first.status_code == second.status_code == 201
    assert second.json["id"] != first.json["id"]
    assert second.json["custodian_organization_id"] == str(other[0].id)
    assert list_ids(client, other[1]) == [second.json["id"]]


@pytest.mark.no_db
def test_two_requests_under_one_idempotency_key_at_once_make_one_family(served, monkeypatch):
    """The second waits for the first's claim on the key, then answers as a retry would."""
    import threading
    import time

    from families import service
    from tests.conftest import Factory

    make = Factory(served)
    holder = make.organization(name="Clinic", type="pediatric_primary_care")
    headers = bearer(make.token(holder)) | {"Idempotency-Key": "intake-at-once"}
    create_family = service.create_family

    def slow_create_family(*args, **kwargs):
        created = create_family(*args, **kwargs)
        time.sleep(0.3)  # the other request arrives while this one still works
        return created

    monkeypatch.setattr(service, "create_family", slow_create_family)
    answers = []

    def post():
        answers.append(post_family(served.test_client(), headers))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [201, 201], [a.json for a in answers]
    assert answers[0].json == answers[1].json
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert list_ids(served.test_client(), bearer(make.token(holder))) == [answers[0].json["id"]]


# -- bad input ------------------------------------------------------------------------------------


def _tomorrow() -> str:
    return (clock.today() + timedelta(days=1)).isoformat()


def _caregiver(n: int) -> dict:
    return {"given_name": f"Caregiver{n}", "family_name": "Okafor", "relationship": "other"}


def _set(path: str, value):
    """A mutation setting the member at a dotted path (list indexes are numbers)."""

    def apply(body):
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DELETE:
            del target[last]
        elif callable(value):
            target[last] = value()
        else:
            target[last] = value
        return body

    return apply


_DELETE = object()

#: (case, mutation, the field path named in `errors`).
BAD_INPUT = [
    ("missing child", _set("child", _DELETE), "child"),
    ("missing caregivers", _set("caregivers", _DELETE), "caregivers"),
    ("missing child given name", _set("child.given_name", _DELETE), "child.given_name"),
    ("blank child given name", _set("child.given_name", "   "), "child.given_name"),
    ("birth date in the future", _set("child.birth_date", _tomorrow), "child.birth_date"),
    ("birth date 2026-02-30", _set("child.birth_date", "2026-02-30"), "child.birth_date"),
    ("birth date not a date", _set("child.birth_date", "03/02/2026"), "child.birth_date"),
    ("birth date in ISO 8601 basic form", _set("child.birth_date", "20260102"),
     "child.birth_date"),
    ("birth date as an ISO week date", _set("child.birth_date", "2026-W01-5"),
     "child.birth_date"),
    ("phone without +", _set("caregivers.0.phone", "17345550101"), "caregivers.0.phone"),
    ("phone with dashes", _set("caregivers.0.phone", "+1-734-555-0101"), "caregivers.0.phone"),
    ("phone local", _set("caregivers.1.phone", "555-0101"), "caregivers.1.phone"),
    ("bad email", _set("caregivers.0.email", "ngozi.example.org"), "caregivers.0.email"),
    ("bad email with space", _set("caregivers.0.email", "ngozi @example.org"),
     "caregivers.0.email"),
    ("unknown relationship", _set("caregivers.1.relationship", "aunt"),
     "caregivers.1.relationship"),
    ("has_legal_authority yes", _set("caregivers.0.has_legal_authority", "yes"),
     "caregivers.0.has_legal_authority"),
    ("has_legal_authority 1", _set("caregivers.0.has_legal_authority", 1),
     "caregivers.0.has_legal_authority"),
    ("no caregivers", _set("caregivers", []), "caregivers"),
    ("11 caregivers", _set("caregivers", lambda: [_caregiver(n) for n in range(11)]),
     "caregivers"),
    ("caregivers not a list", _set("caregivers", {"given_name": "Ngozi"}), "caregivers"),
    ("preferred_language not a tag", _set("preferred_language", "not a tag"),
     "preferred_language"),
    ("interpreter_needed a string", _set("interpreter_needed", "true"), "interpreter_needed"),
    ("cultural considerations of 2001 characters",
     _set("cultural_considerations", "x" * 2001), "cultural_considerations"),
    ("blank cultural considerations", _set("cultural_considerations", "   "),
     "cultural_considerations"),
    ("cultural considerations with a control character",
     _set("cultural_considerations", "a\x01b"), "cultural_considerations"),
    ("contact method pigeon", _set("contact_preferences.methods", ["phone", "pigeon"]),
     "contact_preferences.methods.1"),
    ("contact methods repeated", _set("contact_preferences.methods", ["phone", "phone"]),
     "contact_preferences.methods"),
    ("do_not_contact a string", _set("contact_preferences.do_not_contact", "no"),
     "contact_preferences.do_not_contact"),
    ("unknown top-level field", _set("nickname", "Mara"), "nickname"),
    ("unknown child field", _set("child.nickname", "Mara"), "child.nickname"),
    ("unknown caregiver field", _set("caregivers.1.ssn", "123-45-6789"), "caregivers.1.ssn"),
    ("unknown contact preference", _set("contact_preferences.pager", True),
     "contact_preferences.pager"),
]


@pytest.mark.parametrize(("mutate", "path"), [case[1:] for case in BAD_INPUT],
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_on_create_is_422_naming_the_field_and_nothing_is_stored(
        client, custodian, mutate, path):
    _, headers = custodian

    response = post_family(client, headers, mutate(family_body()))

    assert_validation_error(response, path)
    assert list_ids(client, headers) == []


# A PATCH merges what it sends into the record: a member left out of `child` stays as it is.
PATCH_BAD_INPUT = [case for case in BAD_INPUT
                   if case[0] not in ("missing child", "missing caregivers",
                                      "missing child given name")]


@pytest.mark.parametrize(("mutate", "path"), [case[1:] for case in PATCH_BAD_INPUT],
                         ids=[case[0] for case in PATCH_BAD_INPUT])
def test_bad_input_on_change_is_422_naming_the_field_and_nothing_changes(
        client, custodian, mutate, path):
    _, headers = custodian
    document = created(client, headers)
    before = read(client, headers, document["id"])
    body = family_body()
    body["preferred_language"] = "en"  # a good change that must not be kept either

    response = client.patch(family_url(document["id"]), json=mutate(body), headers=headers)

    assert_validation_error(response, path)
    assert read(client, headers, document["id"]) == before


def test_boundaries_are_accepted(client, custodian):
    _, headers = custodian
    body = family_body(birth_date=clock.today().isoformat())  # born today
    body["cultural_considerations"] = "é" * 2000
    body["caregivers"] = [_caregiver(n) for n in range(10)]
    body["caregivers"][0]["phone"] = "+441632960961"
    body["preferred_language"] = "zh-Hant"
    body["contact_preferences"]["methods"] = ["phone", "text", "email", "mail", "in_person"]

    document = created(client, headers, body)

    assert len(document["caregivers"]) == 10
    assert document["cultural_considerations"] == "é" * 2000
    assert document["child"]["birth_date"] == body["child"]["birth_date"]


# -- GET /api/v1/families ------------------------------------------------------------------------


def test_list_holds_only_the_callers_families_newest_first(client, agency):
    clock.freeze(T0)
    _, headers = agency("Riverbend Infant Mental Health", lifetime=86400)
    _, other_headers = agency("Lakeshore Pediatrics", lifetime=86400)
    mine = []
    for minute, name in enumerate(["Amara", "Bola", "Chidi"]):
        clock.freeze(T0 + timedelta(minutes=2 * minute))
        mine.append(created(client, headers, family_body(name))["id"])
        clock.freeze(T0 + timedelta(minutes=2 * minute + 1))
        created(client, other_headers, family_body(name))
    clock.freeze(T0 + timedelta(hours=1))

    response = client.get(FAMILIES, headers=headers)

    assert response.status_code == 200
    assert response.json["next_cursor"] is None
    assert [i["id"] for i in response.json["items"]] == mine[::-1]
    for item in response.json["items"]:
        assert item.keys() == FAMILY_KEYS
        assert item["redacted"] == []
        assert item["caregivers"] and item["contact_preferences"]


def test_list_of_an_organization_without_families_is_empty(client, custodian, other):
    created(client, custodian[1])

    response = client.get(FAMILIES, headers=other[1])

    assert response.status_code == 200
    assert response.json == {"items": [], "next_cursor": None}


def test_keyset_pages_of_one_walk_every_family_once_newest_first(client, agency):
    clock.freeze(T0)
    _, headers = agency("Riverbend Infant Mental Health", lifetime=86400)
    expected = []
    # Two families share an instant: the keyset breaks the tie without losing or repeating.
    for at, name in [(T0, "A"), (T0 + timedelta(seconds=1), "B"),
                     (T0 + timedelta(seconds=1), "C"), (T0 + timedelta(seconds=2), "D")]:
        clock.freeze(at)
        expected.append((at, created(client, headers, family_body(name))["id"]))
    newest_first = [i for _, i in sorted(expected, key=lambda e: (e[0], uuid.UUID(e[1])),
                                         reverse=True)]

    seen, cursor = [], None
    for _ in range(10):
        query = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = client.get(FAMILIES, headers=headers, query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert len(response.json["items"]) == 1
        seen.append(response.json["items"][0]["id"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor

    assert seen == newest_first
    # A family recorded while walking is newer than the cursor, so it does not appear behind it.
    assert list_ids(client, headers, limit=2) == newest_first[:2]


def test_pages_of_two_cover_the_list(client, custodian):
    _, headers = custodian
    ids = [created(client, headers, family_body(n))["id"] for n in ("A", "B", "C")]

    first = client.get(FAMILIES, headers=headers, query_string={"limit": 2}).json
    second = client.get(FAMILIES, headers=headers,
                        query_string={"limit": 2, "cursor": first["next_cursor"]}).json

    assert [i["id"] for i in first["items"]] == ids[:0:-1]
    assert [i["id"] for i in second["items"]] == ids[:1]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(("query", "field"), [
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": ""}, "cursor"),
    ({"cursor": "WyIyMDI2LTA5LTAxIiwiMSJd"}, "cursor"),  # base64 of a plausible keyset
    ({"offset": "1"}, "offset"),
])
def test_bad_list_queries_are_422(client, custodian, query, field):
    _, headers = custodian
    created(client, headers)

    response = client.get(FAMILIES, headers=headers, query_string=query)

    assert_validation_error(response, field)


def test_limits_at_the_bounds_are_accepted(client, custodian):
    _, headers = custodian
    created(client, headers)

    assert len(list_ids(client, headers, limit=1)) == 1
    assert len(list_ids(client, headers, limit=200)) == 1


def test_a_tampered_cursor_is_422(client, custodian):
    _, headers = custodian
    created(client, headers, family_body("A"))
    created(client, headers, family_body("B"))
    cursor = client.get(FAMILIES, headers=headers, query_string={"limit": 1}).json["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")

    response = client.get(FAMILIES, headers=headers, query_string={"cursor": tampered})

    assert_validation_error(response, "cursor")


def test_a_cursor_of_another_list_is_422(client, custodian, other, make):
    organization, headers = custodian
    created(client, headers)
    family = make.family(organization)
    other_organization, _ = other
    make.consent(family, [organization, other_organization])
    make.consent(family, [organization, other_organization])
    consent_headers = bearer(make.token(organization, ["consent:read"]))
    consents = client.get(f"/api/v1/families/{family.id}/consents", headers=consent_headers,
                          query_string={"limit": 1})
    assert consents.status_code == 200
    assert consents.json["next_cursor"]

    response = client.get(FAMILIES, headers=headers,
                          query_string={"cursor": consents.json["next_cursor"]})

    assert_validation_error(response, "cursor")


# -- GET /api/v1/families/{id} --------------------------------------------------------------------


@pytest.mark.parametrize("purpose", [None, "referral", "care_coordination", "treatment"])
def test_the_custodian_reads_the_whole_record_for_any_purpose(client, custodian, purpose):
    organization, headers = custodian
    body = family_body()
    posted = created(client, headers, body)
    query = {"purpose": purpose} if purpose else {}

    response = client.get(family_url(posted["id"]), headers=headers, query_string=query)

    assert response.status_code == 200
    document = response.json
    assert document.keys() == FAMILY_KEYS
    assert document["redacted"] == []
    assert document["custodian_organization_id"] == str(organization.id)
    assert document["child"] == body["child"]
    assert without_ids(document["caregivers"]) == body["caregivers"]
    assert all(c.keys() == CAREGIVER_KEYS for c in document["caregivers"])
    assert document["contact_preferences"] == body["contact_preferences"]
    assert document["cultural_considerations"] == body["cultural_considerations"]
    assert response.headers["ETag"]


@pytest.mark.parametrize("purpose", ["unknown", "REFERRAL", "", "marketing"])
def test_an_unknown_purpose_is_422(client, custodian, purpose):
    _, headers = custodian
    posted = created(client, headers)

    response = client.get(family_url(posted["id"]), headers=headers,
                          query_string={"purpose": purpose})

    assert_validation_error(response, "purpose")


def test_a_stranger_reads_404_exactly_like_an_unknown_id(client, custodian, other):
    posted = created(client, custodian[1])

    hidden = client.get(family_url(posted["id"]), headers=other[1])
    unknown = client.get(family_url(uuid.uuid4()), headers=other[1])

    hidden_body = assert_problem(hidden, 404, "not-found")
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert hidden_body["title"] == unknown_body["title"]
    assert hidden_body["detail"] == unknown_body["detail"]
    assert "ETag" not in hidden.headers


MALFORMED_IDS = ["not-a-uuid", "12345", "00000000-0000-0000-0000-00000000000g",
                 "00000000-0000-0000-0000-0000000000000"]


@pytest.mark.parametrize("family_id", MALFORMED_IDS)
def test_a_malformed_id_is_404(client, custodian, family_id):
    _, headers = custodian
    created(client, headers)

    assert_problem(client.get(family_url(family_id), headers=headers), 404, "not-found")
    response = client.patch(family_url(family_id), json={"preferred_language": "en"},
                            headers=headers)
    assert_problem(response, 404, "not-found")


IDENTITY_CAREGIVER_KEYS = {"id", "given_name", "family_name", "relationship",
                           "relationship_description", "has_legal_authority"}
CONTACT_KEYS = {"preferred_language", "interpreter_needed", "cultural_considerations",
                "contact_preferences"}


@pytest.mark.parametrize(("categories", "redacted"), [
    (("identity", "contact"), []),
    (("identity", "referral_reason"), ["contact"]),
    (("contact",), ["identity"]),
])
def test_a_partner_reads_exactly_the_categories_consent_permits(
        client, custodian, other, make, categories, redacted):
    organization, headers = custodian
    partner, partner_headers = other
    family = make.family(organization)
    make.consent(family, [organization, partner], purposes=("care_coordination",),
                 categories=categories)
    whole, etag = read(client, headers, family.id)

    response = client.get(family_url(family.id), headers=partner_headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    document = response.json
    assert document["redacted"] == redacted
    assert document["id"] == str(family.id)
    assert document["custodian_organization_id"] == str(organization.id)
    assert ("child" in document) == ("identity" in categories)
    for key in CONTACT_KEYS:
        assert (key in document) == ("contact" in categories), key
        if key in document:
            assert document[key] == whole[key]
    keys = {"id"}
    keys |= IDENTITY_CAREGIVER_KEYS if "identity" in categories else set()
    keys |= {"phone", "email"} if "contact" in categories else set()
    assert [c.keys() for c in document["caregivers"]] == [keys, keys]
    assert [{k: c[k] for k in keys} for c in whole["caregivers"]] == document["caregivers"]
    assert response.headers["ETag"] == etag


@pytest.mark.parametrize(("purpose", "status"), [
    (None, 404), ("care_coordination", 404), ("treatment", 404), ("referral", 200)])
def test_a_partner_reads_only_for_the_consented_purpose(
        client, custodian, other, make, purpose, status):
    organization, _ = custodian
    partner, partner_headers = other
    family = make.family(organization)
    make.consent(family, [organization, partner], purposes=("referral",))

    response = client.get(family_url(family.id), headers=partner_headers,
                          query_string={"purpose": purpose} if purpose else {})

    if status == 404:
        assert_problem(response, 404, "not-found")
    else:
        assert response.status_code == 200
        assert response.json["redacted"] == []


# -- PATCH /api/v1/families/{id} ------------------------------------------------------------------


def test_the_custodian_changes_fields_and_the_etag_changes(client, custodian):
    _, headers = custodian
    posted = created(client, headers)
    before, etag = read(client, headers, posted["id"])
    changes = {
        "child": {"given_name": "Amara", "family_name": "Okafor-Eze",
                  "birth_date": "2026-03-01", "county": None},
        "preferred_language": "ig",
        "interpreter_needed": False,
        "cultural_considerations": None,
        "contact_preferences": {"do_not_contact": True, "methods": [], "best_times": None},
    }

    response = client.patch(family_url(posted["id"]), json=changes, headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    document = record_of(response)
    assert document.keys() == FAMILY_KEYS
    for field, value in changes.items():
        assert document[field] == value, field
    assert document["caregivers"] == before["caregivers"]  # not given: untouched
    new_etag = response.headers["ETag"]
    assert new_etag != etag
    assert read(client, headers, posted["id"]) == (document, new_etag)


def test_a_field_left_out_of_the_patch_is_untouched(client, custodian):
    _, headers = custodian
    posted = created(client, headers)
    before, _ = read(client, headers, posted["id"])

    response = client.patch(family_url(posted["id"]), json={"interpreter_needed": False},
                            headers=headers)

    assert response.status_code == 200
    expected = copy.deepcopy(before)
    expected["interpreter_needed"] = False
    after = record_of(response)
    assert after.pop("updated_at") >= expected.pop("updated_at")  # the change is dated
    assert after == expected


def test_patch_with_the_current_etag_succeeds_and_each_change_gets_a_new_etag(
        client, custodian):
    _, headers = custodian
    posted = created(client, headers)
    _, etag = read(client, headers, posted["id"])

    first = client.patch(family_url(posted["id"]), json={"preferred_language": "en"},
                         headers=headers | {"If-Match": etag})
    assert first.status_code == 200, first.get_data(as_text=True)
    second = client.patch(family_url(posted["id"]), json={"preferred_language": "fr"},
                          headers=headers | {"If-Match": first.headers["ETag"]})
    assert second.status_code == 200, second.get_data(as_text=True)

    assert len({etag, first.headers["ETag"], second.headers["ETag"]}) == 3
    assert read(client, headers, posted["id"])[0]["preferred_language"] == "fr"


@pytest.mark.parametrize("if_match", ["*", '"v0", current'])
def test_if_match_any_or_a_list_holding_the_current_etag_succeeds(client, custodian, if_match):
    _, headers = custodian
    posted = created(client, headers)
    _, etag = read(client, headers, posted["id"])

    response = client.patch(family_url(posted["id"]), json={"interpreter_needed": False},
                            headers=headers | {"If-Match": if_match.replace("current", etag)})

    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("stale", ["previous", '"v999"', "W/previous", '"nonsense"'])
def test_a_stale_if_match_is_412_and_nothing_changes(app, client, custodian, stale):
    _, headers = custodian
    posted = created(client, headers)
    _, old_etag = read(client, headers, posted["id"])
    changed = client.patch(family_url(posted["id"]), json={"preferred_language": "en"},
                           headers=headers)
    assert changed.status_code == 200
    before = read(client, headers, posted["id"])
    if_match = stale.replace("previous", old_etag)

    response = client.patch(family_url(posted["id"]),
                            json={"preferred_language": "fr", "interpreter_needed": False},
                            headers=headers | {"If-Match": if_match})

    assert_problem(response, 412, "precondition-failed")
    assert read(client, headers, posted["id"]) == before
    assert before[0]["preferred_language"] == "en"
    with app.app_context():
        [refusal] = audit_events(outcome="deny", resource_id=posted["id"])
    assert refusal.family_id == uuid.UUID(posted["id"])  # the family filter finds it


def test_caregivers_list_keeps_by_id_changes_adds_and_removes(client, custodian):
    _, headers = custodian
    posted = created(client, headers)
    mother, grandmother = posted["caregivers"]
    _, etag = read(client, headers, posted["id"])
    wanted = [
        {"given_name": "Emeka", "family_name": "Okafor", "relationship": "father",
         "relationship_description": "Amara's father, back from abroad",
         "has_legal_authority": True, "phone": "+17345550102", "email": None},
        {**{k: v for k, v in mother.items()}, "phone": "+17345550199",
         "email": "ngozi.okafor@example.org"},
    ]

    response = client.patch(family_url(posted["id"]), json={"caregivers": wanted},
                            headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    caregivers = response.json["caregivers"]
    assert len(caregivers) == 2
    father, kept = caregivers
    assert kept["id"] == mother["id"]  # kept by id, changed in place
    assert kept == wanted[1]
    assert str(uuid.UUID(father["id"])) == father["id"]
    assert father["id"] not in (mother["id"], grandmother["id"])  # added with a new id
    assert {k: v for k, v in father.items() if k != "id"} == wanted[0]
    assert grandmother["id"] not in response.get_data(as_text=True)  # removed
    assert response.headers["ETag"] != etag
    assert read(client, headers, posted["id"]) == (record_of(response), response.headers["ETag"])


def test_changing_one_caregivers_phone_alone_changes_the_etag(client, custodian):
    _, headers = custodian
    posted = created(client, headers)
    _, etag = read(client, headers, posted["id"])
    caregivers = copy.deepcopy(posted["caregivers"])
    caregivers[1]["phone"] = "+17345550123"

    response = client.patch(family_url(posted["id"]), json={"caregivers": caregivers},
                            headers=headers)

    assert response.status_code == 200
    assert response.json["caregivers"] == caregivers
    assert response.headers["ETag"] != etag


def test_a_caregiver_change_changes_the_etag_even_within_one_clock_instant(
        client, agency):
    clock.freeze(T0)
    _, headers = agency("Riverbend Infant Mental Health")
    posted = created(client, headers)
    _, etag = read(client, headers, posted["id"])
    caregivers = copy.deepcopy(posted["caregivers"])
    caregivers[1]["phone"] = "+17345550123"

    response = client.patch(family_url(posted["id"]), json={"caregivers": caregivers},
                            headers=headers)

    assert response.status_code == 200
    assert response.json["caregivers"] == caregivers
    assert response.headers["ETag"] != etag
    # The old tag must now be stale: a client holding it would overwrite this change.
    stale = client.patch(family_url(posted["id"]), json={"preferred_language": "en"},
                         headers=headers | {"If-Match": etag})
    assert_problem(stale, 412, "precondition-failed")


def test_an_unknown_caregiver_id_is_422_and_nothing_changes(client, custodian, make):
    organization, headers = custodian
    posted = created(client, headers)
    elsewhere = make.family(organization, given_name="Bola")
    before = read(client, headers, posted["id"])

    for foreign_id in (str(uuid.uuid4()), ids_of(elsewhere)[0]):
        caregivers = copy.deepcopy(posted["caregivers"])
        caregivers[1]["id"] = foreign_id
        response = client.patch(family_url(posted["id"]),
                                json={"caregivers": caregivers, "preferred_language": "en"},
                                headers=headers)
        assert_validation_error(response, "caregivers")
        assert read(client, headers, posted["id"]) == before


def test_a_caregiver_id_given_twice_is_422(client, custodian):
    _, headers = custodian
    posted = created(client, headers)
    before = read(client, headers, posted["id"])
    caregivers = [posted["caregivers"][0], {**posted["caregivers"][0], "given_name": "N."}]

    response = client.patch(family_url(posted["id"]), json={"caregivers": caregivers},
                            headers=headers)

    assert_validation_error(response, "caregivers")
    assert read(client, headers, posted["id"]) == before


@pytest.mark.parametrize("revoked", [False, True])
def test_removing_a_caregiver_who_granted_a_consent_is_409_and_nothing_changes(
        client, custodian, other, make, revoked):
    organization, headers = custodian
    family = make.family(organization)
    make.consent(family, [organization, other[0]], revoked=revoked)
    before = read(client, headers, family.id)
    mother, grandmother = before[0]["caregivers"]
    assert mother["has_legal_authority"] is True  # the grantor

    response = client.patch(family_url(family.id),
                            json={"caregivers": [grandmother], "preferred_language": "en"},
                            headers=headers)

    assert_problem(response, 409, "conflict")
    assert read(client, headers, family.id) == before


def test_removing_a_caregiver_who_granted_nothing_is_allowed(client, custodian, other, make):
    organization, headers = custodian
    family = make.family(organization)
    make.consent(family, [organization, other[0]])
    before, _ = read(client, headers, family.id)
    mother, _ = before["caregivers"]

    response = client.patch(family_url(family.id), json={"caregivers": [mother]},
                            headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["caregivers"] == [mother]


@pytest.mark.parametrize(("purposes", "categories"), [
    (("referral", "care_coordination"), ("identity", "contact")),
    (("referral",), ("identity",)),
    (("care_coordination",), ("contact",)),
    (("treatment",), ("identity", "contact")),
])
def test_a_partner_that_may_see_the_family_cannot_change_it(
        client, custodian, other, make, purposes, categories):
    organization, headers = custodian
    partner, partner_headers = other
    family = make.family(organization)
    make.consent(family, [organization, partner], purposes=purposes, categories=categories)
    before = read(client, headers, family.id)
    # The partner does see the family under the consent...
    seen = client.get(family_url(family.id), headers=partner_headers,
                      query_string={"purpose": purposes[0]})
    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert seen.headers["ETag"] == before[1]  # the same version for every viewer

    response = client.patch(family_url(family.id), json={"preferred_language": "en"},
                            headers=partner_headers)

    # ...but only the custodian changes the record.
    body = assert_problem(response, 403, "forbidden")
    assert body["type"] not in ("/problems/insufficient-scope", "/problems/consent-required")
    assert read(client, headers, family.id) == before


@pytest.mark.parametrize("consent", ["none", "revoked", "expired", "not naming the custodian"])
def test_a_stranger_changing_a_family_gets_404_like_an_unknown_id(
        client, custodian, other, agency, make, consent):
    organization, headers = custodian
    stranger, stranger_headers = other
    family = make.family(organization)
    if consent == "revoked":
        make.consent(family, [organization, stranger], revoked=True)
    elif consent == "expired":
        make.consent(family, [organization, stranger],
                     effective_at=clock.now() - timedelta(days=30), expires_in_days=10)
    elif consent == "not naming the custodian":
        third, _ = agency("Third Early Intervention", type="early_intervention")
        make.consent(family, [third, stranger])
    before = read(client, headers, family.id)

    hidden = client.patch(family_url(family.id), json={"preferred_language": "en"},
                          headers=stranger_headers)
    unknown = client.patch(family_url(uuid.uuid4()), json={"preferred_language": "en"},
                           headers=stranger_headers)
    # Neither a stale tag nor a caregiver id tells the stranger the family exists.
    stale = client.patch(family_url(family.id), json={"preferred_language": "en"},
                         headers=stranger_headers | {"If-Match": '"v999"'})
    assert_problem(stale, 404, "not-found")
    probe = client.patch(family_url(family.id), headers=stranger_headers, json={
        "caregivers": [{"id": str(uuid.uuid4()), "given_name": "X", "family_name": "Y",
                        "relationship": "other"}]})
    assert_problem(probe, 404, "not-found")

    hidden_body = assert_problem(hidden, 404, "not-found")
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert (hidden_body["title"], hidden_body["detail"]) == \
        (unknown_body["title"], unknown_body["detail"])
    assert read(client, headers, family.id) == before


def test_patch_with_only_families_read_is_403_insufficient_scope(client, custodian, make):
    organization, headers = custodian
    posted = created(client, headers)
    before = read(client, headers, posted["id"])
    reader = bearer(make.token(organization, ["families:read"]))

    response = client.patch(family_url(posted["id"]), json={"preferred_language": "en"},
                            headers=reader)

    assert_problem(response, 403, "insufficient-scope")
    assert read(client, headers, posted["id"]) == before


# -- scopes and tokens ----------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "collection", "families:write"),
    ("GET", "collection", "families:read"),
    ("GET", "item", "families:read"),
    ("PATCH", "item", "families:write"),
]


def _call(client, method, where, family_id, headers):
    url = FAMILIES if where == "collection" else family_url(family_id)
    body = None
    if method == "POST":
        body = family_body("Zed")
    elif method == "PATCH":
        body = {"preferred_language": "en"}
    return client.open(url, method=method, json=body, headers=headers)


@pytest.mark.parametrize(("method", "where", "scope"), ENDPOINTS)
def test_a_token_without_the_routes_scope_is_403(client, custodian, make, method, where, scope):
    organization, headers = custodian
    posted = created(client, headers)
    before = read(client, headers, posted["id"])
    others = [s for s in SCOPES if s != scope]
    wrong = bearer(make.token(organization, others))

    response = _call(client, method, where, posted["id"], wrong)

    assert_problem(response, 403, "insufficient-scope")
    assert read(client, headers, posted["id"]) == before
    assert list_ids(client, headers) == [posted["id"]]


@pytest.mark.parametrize(("method", "where", "scope"), ENDPOINTS)
@pytest.mark.parametrize("token", ["none", "unknown", "expired", "revoked", "in the query"])
def test_without_a_valid_token_it_is_401(client, custodian, make, method, where, scope, token):
    organization, headers = custodian
    posted = created(client, headers)
    before = read(client, headers, posted["id"])
    query = None
    if token == "none":
        auth = {}
    elif token == "unknown":
        auth = bearer("not-a-token-this-service-issued")
    elif token == "expired":
        auth = bearer(make.token(organization, RW, lifetime=-1))
    elif token == "revoked":
        auth = bearer(make.token(organization, RW, revoked=True))
    else:
        auth, query = {}, make.token(organization, RW)

    url = FAMILIES if where == "collection" else family_url(posted["id"])
    if query:
        url += f"?access_token={query}"
    body = family_body("Zed") if method == "POST" else (
        {"preferred_language": "en"} if method == "PATCH" else None)
    response = client.open(url, method=method, json=body, headers=auth)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert read(client, headers, posted["id"]) == before
    assert list_ids(client, headers) == [posted["id"]]


def test_a_patch_leaves_unnamed_fields_as_they_are(client, custodian):
    _, headers = custodian
    created = post_family(client, headers, family_body() | {"interpreter_needed": True})
    assert created.status_code == 201 and created.json["interpreter_needed"] is True
    patched = client.patch(f"/api/v1/families/{created.json['id']}",
                           json={"preferred_language": "fr"}, headers=headers)
    assert patched.status_code == 200
    assert patched.json["interpreter_needed"] is True
    assert patched.json["preferred_language"] == "fr"


@pytest.mark.parametrize("field", ["preferred_language"])
def test_a_language_tag_longer_than_35_characters_is_422(client, custodian, field):
    _, headers = custodian
    body = family_body() | {field: "en-abcdefgh-abcdefgh-abcdefgh-abcdefgh-abcdefgh"}
    assert_validation_error(post_family(client, headers, body), field)
    assert list_ids(client, headers) == []


def test_a_replayed_creation_is_recorded_as_a_read(app, client, custodian):
    from tests.conftest import audit_events

    organization, headers = custodian
    keyed = headers | {"Idempotency-Key": "replay-audited"}
    first = post_family(client, keyed)
    again = post_family(client, keyed)
    assert again.headers["Idempotent-Replayed"] == "true"
    with app.app_context():
        [event] = audit_events(organization_id=organization.id, reason="idempotent_replay")
        assert (event.action, event.resource_type, event.resource_id) == (
            "read", "family", first.json["id"])


def test_the_custodian_is_told_when_its_record_last_changed_and_no_one_else_is(
        client, custodian, other, make):
    """The list's `updated_since` keeps a copy in step; its items say when each changed. A
    partner seeing everything under consent is not told: a change may be in a category
    withheld from another, and the partner holds no copy to keep in step."""
    organization, headers = custodian
    partner, partner_headers = other
    clock.freeze(T0)
    posted = created(client, headers)
    assert posted["updated_at"] == clock.rfc3339(T0)
    later = T0 + timedelta(minutes=5)
    clock.freeze(later)
    patched = client.patch(family_url(posted["id"]), json={"preferred_language": "en"},
                           headers=headers)
    assert patched.json["updated_at"] == clock.rfc3339(later)

    listed = client.get(FAMILIES, headers=headers,
                        query_string={"updated_since": clock.rfc3339(later)}).json["items"]
    assert [(i["id"], i["updated_at"]) for i in listed] == [(posted["id"], clock.rfc3339(later))]
    assert read(client, headers, posted["id"])[0]["updated_at"] == clock.rfc3339(later)

    family = make.family(organization)
    make.consent(family, [organization, partner], categories=("identity", "contact"))
    seen = client.get(family_url(family.id), headers=partner_headers)
    assert seen.status_code == 200 and seen.json["redacted"] == []
    assert "updated_at" not in seen.json
    assert "updated_at" in read(client, headers, family.id)[0]
