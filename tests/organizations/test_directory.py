"""The directory through HTTP: listing, filters, keyset pages, reading one entry, and each
organization keeping its own listing."""

import base64
import json
import os
import uuid
from datetime import UTC, datetime

import flask_migrate
import pytest
import sqlalchemy as sa

from core import time as clock
from core.db import db
from organizations.models import ORGANIZATION_TYPES
from organizations.service import create_organization
from tests.conftest import Factory, assert_problem, assert_validation_error, bearer, make_app

T0 = datetime(2026, 3, 2, 14, 5, 9, 123456, tzinfo=UTC)
ENTRY_KEYS = {"id", "name", "type", "counties", "languages", "accepting_referrals", "capacity"}
ON_SQLITE = not os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")

#: The directory used by the listing tests; the caller is "Caller Family Services".
DIRECTORY = [
    dict(name="Riverbend Infant Mental Health", type="imh_provider",
         counties=("Washtenaw",), languages=("en", "es"), accepting_referrals=True),
    dict(name="Lakeshore Pediatrics", type="pediatric_primary_care",
         counties=("Wayne", "Oakland"), languages=("en",), accepting_referrals=False),
    dict(name="Wayne County Child Welfare", type="child_welfare",
         counties=("Wayne",), languages=("en", "ar"), accepting_referrals=True),
    dict(name="100% Kids Early Intervention", type="early_intervention",
         counties=("Washtenaw", "Livingston"), languages=("es",), accepting_referrals=True),
    dict(name="Home_Visits Collective", type="home_visiting",
         counties=("Oakland",), languages=("en", "zh-Hant"), accepting_referrals=False),
    dict(name="Back\\Slash Health System", type="hospital",
         counties=("Livingston",), languages=("en",), accepting_referrals=True),
    dict(name="Caller Family Services", type="community_other",
         counties=("Jackson",), languages=("fr",), accepting_referrals=False),
]
ALL_NAMES = sorted(entry["name"] for entry in DIRECTORY)






@pytest.fixture
def directory(make):
    """Every organization of DIRECTORY, by name, and a directory:read token of the caller's."""
    organizations = {entry["name"]: make.organization(**entry) for entry in DIRECTORY}
    token = make.token(organizations["Caller Family Services"], ["directory:read"])
    return organizations, bearer(token)


def names(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["name"] for item in response.json["items"]]


# -- listing ------------------------------------------------------------------------------------


def test_list_shows_every_entry_in_name_order(client, directory):
    organizations, headers = directory

    response = client.get("/api/v1/organizations", headers=headers)

    assert response.status_code == 200, response.json
    assert response.json.keys() == {"items", "next_cursor"}
    assert response.json["next_cursor"] is None
    assert names(response) == ALL_NAMES
    riverbend = next(i for i in response.json["items"] if i["name"].startswith("Riverbend"))
    assert riverbend == {
        "id": str(organizations["Riverbend Infant Mental Health"].id),
        "name": "Riverbend Infant Mental Health",
        "type": "imh_provider",
        "counties": ["Washtenaw"],
        "languages": ["en", "es"],
        "accepting_referrals": True,
        "capacity": None,
    }
    assert all(item.keys() == ENTRY_KEYS for item in response.json["items"])


def test_equal_names_are_ordered_by_id(client, make):
    # One name, four types: the directory lists one organization per name and type.
    same = [make.organization(name="Same Name Services", type=type_)
            for type_ in ORGANIZATION_TYPES[:4]]
    token = make.token(same[0], ["directory:read"])

    response = client.get("/api/v1/organizations", headers=bearer(token))

    ids = [item["id"] for item in response.json["items"]]
    assert ids == sorted(str(org.id) for org in same)


def test_names_are_ordered_alphabetically_regardless_of_case(client, make):
    for name in ("Zeeland Kids", "alpha Family Center", "Bright Start", "ellis Clinic"):
        caller = make.organization(name=name)
    token = make.token(caller, ["directory:read"])

    response = client.get("/api/v1/organizations", headers=bearer(token))

    assert names(response) == ["alpha Family Center", "Bright Start", "ellis Clinic",
                               "Zeeland Kids"]


#: Names whose order a locale's collation changes: punctuation and digits, accents, case.
NAMES = ["Zeta Family Center", "Éclair Infant Services", "alpha Clinic", "Alpha Clinic 2",
         "Ñandú Home Visiting", "Nube Early Head Start", "100 Acres Kids", "_Underscore Care"]


@pytest.fixture
def locale_collated(app, tmp_path):
    """A client and a factory on a new, migrated database whose default collation is a
    locale's, dropped afterwards: on PostgreSQL one collated as ICU `en` (the default of many
    installations); SQLite's own collation has no locale. Its commits are real: a test using
    it is `no_db`, outside the suite's rolled-back session."""
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    server = None
    if url.get_backend_name() == "sqlite":
        collated_url = f"sqlite:///{tmp_path / 'collated.sqlite3'}"
    else:
        name = f"{url.database}_icu_{uuid.uuid4().hex[:8]}"
        server = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            connection.exec_driver_sql(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu "
                f"ICU_LOCALE 'en' LOCALE 'C.UTF-8'")
        collated_url = url.set(database=name).render_as_string(hide_password=False)
    try:
        collated = make_app(collated_url)
        with collated.app_context():
            flask_migrate.upgrade()
        try:
            yield collated.test_client(), Factory(collated)
        finally:
            with collated.app_context():
                db.session.remove()
                db.engine.dispose()
    finally:
        if server is not None:
            with server.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            server.dispose()


@pytest.mark.no_db
def test_the_order_is_the_casefolded_names_whatever_the_databases_collation(locale_collated):
    """By code point, as Python sorts: an ICU `en` collation would put `_Underscore Care`
    first and `Éclair` among the E names."""
    client, make = locale_collated
    created = [make.organization(name=name) for name in NAMES]
    headers = bearer(make.token(created[0], ["directory:read"]))
    expected = sorted(NAMES, key=str.casefold)

    whole = client.get("/api/v1/organizations", headers=headers)
    pages, cursor = [], None
    for _ in NAMES:  # at most one page a name
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/organizations", query_string=query, headers=headers)
        pages += names(page)
        cursor = page.json["next_cursor"]
        if cursor is None:
            break

    assert names(whole) == expected
    assert pages == expected


FILTERS = [
    ({"type": "imh_provider"}, ["Riverbend Infant Mental Health"]),
    ({"type": "community_other"}, ["Caller Family Services"]),
    ({"type": "early_head_start"}, []),
    ({"county": "Washtenaw"}, ["100% Kids Early Intervention", "Riverbend Infant Mental Health"]),
    ({"county": "washtenaw"}, ["100% Kids Early Intervention", "Riverbend Infant Mental Health"]),
    ({"county": "WAYNE"}, ["Lakeshore Pediatrics", "Wayne County Child Welfare"]),
    ({"county": "Wash"}, []),  # a county, not a part of one
    ({"county": "Kent"}, []),
    ({"language": "es"}, ["100% Kids Early Intervention", "Riverbend Infant Mental Health"]),
    ({"language": "ar"}, ["Wayne County Child Welfare"]),
    ({"language": "ZH-hant"}, ["Home_Visits Collective"]),  # BCP 47 tags ignore case
    ({"language": "de"}, []),
    ({"accepting_referrals": "true"}, [
        "100% Kids Early Intervention", "Back\\Slash Health System",
        "Riverbend Infant Mental Health", "Wayne County Child Welfare"]),
    ({"accepting_referrals": "false"}, [
        "Caller Family Services", "Home_Visits Collective", "Lakeshore Pediatrics"]),
    ({"q": "river"}, ["Riverbend Infant Mental Health"]),
    ({"q": "RIVERBEND INFANT"}, ["Riverbend Infant Mental Health"]),
    ({"q": "health"}, ["Back\\Slash Health System", "Riverbend Infant Mental Health"]),
    ({"q": "e"}, [n for n in ALL_NAMES if "e" in n.lower()]),
    ({"q": "%"}, ["100% Kids Early Intervention"]),  # literal, not "anything"
    ({"q": "0%"}, ["100% Kids Early Intervention"]),
    ({"q": "_"}, ["Home_Visits Collective"]),  # literal, not "any one character"
    ({"q": "e_v"}, ["Home_Visits Collective"]),
    ({"q": "%%"}, []),
    ({"q": "r_v"}, []),  # would match "Riverbend" were `_` a wildcard
    ({"q": "\\"}, ["Back\\Slash Health System"]),
    ({"q": "\\S"}, ["Back\\Slash Health System"]),
    ({"q": "no such agency"}, []),
    ({"type": "imh_provider", "county": "washtenaw", "accepting_referrals": "true"},
     ["Riverbend Infant Mental Health"]),
    ({"county": "Washtenaw", "language": "es", "accepting_referrals": "true"},
     ["100% Kids Early Intervention", "Riverbend Infant Mental Health"]),
    ({"county": "Wayne", "language": "ar"}, ["Wayne County Child Welfare"]),
    ({"county": "Wayne", "accepting_referrals": "false"}, ["Lakeshore Pediatrics"]),
    ({"language": "en", "q": "health", "accepting_referrals": "true"},
     ["Back\\Slash Health System", "Riverbend Infant Mental Health"]),
    ({"type": "hospital", "county": "Washtenaw"}, []),
    ({"county": "oakland", "language": "en", "type": "home_visiting", "q": "visits",
      "accepting_referrals": "false", "limit": "200"}, ["Home_Visits Collective"]),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=lambda v: (
    "&".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else None))
def test_filters(client, directory, query, expected):
    _, headers = directory

    response = client.get("/api/v1/organizations", query_string=query, headers=headers)

    assert names(response) == expected
    assert response.json["next_cursor"] is None


@pytest.mark.parametrize(("name", "q"), [
    ("ÁRBOL de Vida Familias", "árbol"),
    ("İzmir Family Center", "İzmir"),        # PostgreSQL's lower() drops İ's dot, Python's not
    ("ΟΔΟΣ Family Center", "ΟΔΟΣ"),          # a final sigma: σ for one lower(), ς for the other
    ("ΟΔΟΣ Family Center", "οδος"),
    ("Straße Kinder", "STRASSE"),             # casefolded, ß is ss
])
def test_q_ignores_case_beyond_ascii(client, make, name, q):
    caller = make.organization(name=name)
    token = make.token(caller, ["directory:read"])

    response = client.get("/api/v1/organizations", query_string={"q": q},
                          headers=bearer(token))

    assert names(response) == [name]


#: Who offers which language, as each organization lists it.
SPEAKERS = {
    "Clínica Familiar": ("es-MX",),
    "Familias Unidas": ("en", "es-419"),
    "Casa Española": ("es-ES",),
    "Spanish Speaking IMH": ("ES",),
    "Yupik Family Services": ("esu",),
    "Hong Kong Kids": ("zh-Hant-HK",),
    "English Only": ("en",),
}
SPANISH = ["Casa Española", "Clínica Familiar", "Familias Unidas", "Spanish Speaking IMH"]


@pytest.mark.parametrize(("language", "expected"), [
    ("es", SPANISH),  # a language finds its regional variants (RFC 4647 basic filtering)
    ("ES", SPANISH),
    ("es-MX", ["Clínica Familiar", "Spanish Speaking IMH"]),  # and a variant, plain Spanish
    ("es-mx", ["Clínica Familiar", "Spanish Speaking IMH"]),
    ("es-419", ["Familias Unidas", "Spanish Speaking IMH"]),
    ("es-AR", ["Spanish Speaking IMH"]),  # not another region's
    ("esu", ["Yupik Family Services"]),  # `es` is a subtag, not a prefix of any text
    ("zh", ["Hong Kong Kids"]),
    ("zh-Hant", ["Hong Kong Kids"]),
    ("zh-Hans", []),
    ("en-GB", ["English Only", "Familias Unidas"]),
])
def test_a_language_finds_the_organizations_offering_it_in_any_variant(client, make, language,
                                                                       expected):
    for name, languages in SPEAKERS.items():
        caller = make.organization(name=name, languages=languages)
    token = make.token(caller, ["directory:read"])

    response = client.get("/api/v1/organizations", query_string={"language": language},
                          headers=bearer(token))

    assert names(response) == expected


# -- keyset pagination --------------------------------------------------------------------------


@pytest.mark.parametrize("count", [5, 6])
def test_walking_every_page(client, make, count):
    created = [make.organization(name=name, type=type_) for name, type_ in (
        ("Delta Clinic", "imh_provider"), ("Alpha Clinic", "imh_provider"),
        ("Charlie Clinic", "imh_provider"), ("Bravo Clinic", "imh_provider"),
        ("Bravo Clinic", "hospital"), ("Echo Clinic", "imh_provider"))[:count]]
    token = make.token(created[0], ["directory:read"])
    expected = [str(org.id) for org in sorted(created, key=lambda o: (o.name, str(o.id)))]

    seen, pages, cursor = [], [], None
    while True:
        query = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        response = client.get("/api/v1/organizations", query_string=query,
                              headers=bearer(token))
        assert response.status_code == 200, response.json
        pages.append(len(response.json["items"]))
        seen += [item["id"] for item in response.json["items"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10, "pagination does not end"

    assert seen == expected  # every organization once, in order
    assert pages == [2] * (count // 2) + ([count % 2] if count % 2 else [])


def test_cursor_keeps_the_filters_apart_from_the_position(client, directory):
    _, headers = directory
    first = client.get("/api/v1/organizations",
                       query_string={"limit": "1", "accepting_referrals": "true"},
                       headers=headers)
    assert names(first) == ["100% Kids Early Intervention"]

    second = client.get("/api/v1/organizations", headers=headers, query_string={
        "limit": "2", "accepting_referrals": "true", "cursor": first.json["next_cursor"]})

    assert names(second) == ["Back\\Slash Health System", "Riverbend Infant Mental Health"]
    third = client.get("/api/v1/organizations", headers=headers, query_string={
        "limit": "2", "accepting_referrals": "true", "cursor": second.json["next_cursor"]})
    assert names(third) == ["Wayne County Child Welfare"]
    assert third.json["next_cursor"] is None


def _unsigned() -> str:
    return base64.urlsafe_b64encode(
        json.dumps(["A", str(uuid.uuid4())]).encode()).decode().rstrip("=")


def _flip_signature(real: str) -> str:
    payload, _, signature = real.partition(".")
    # The first character carries six bits of the signature (the last one has unused bits).
    return f"{payload}." + ("A" if signature[0] != "A" else "g") + signature[1:]


_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _retouch_last_character(real: str) -> str:
    """The cursor with its last character changed only in the bits base64 leaves unused at
    the end: it decodes to the same bytes, but the service never wrote it."""
    index = _BASE64URL.index(real[-1])
    return real[:-1] + _BASE64URL[(index & ~3) | ((index + 1) & 3)]


FORGED_CURSORS = {
    "garbage": lambda real: "garbage",
    "bad signature": _flip_signature,
    "no signature": lambda real: real.partition(".")[0],
    "unsigned keyset": lambda real: _unsigned(),
    "another payload, same signature": lambda real: f"{_unsigned()}.{real.partition('.')[2]}",
    "truncated": lambda real: real[:-3],
    "last character retouched": _retouch_last_character,
    "an offset": lambda real: "50",
    "plain json": lambda real: json.dumps(["A", str(uuid.uuid4())]),
    "empty": lambda real: "",
    "too long": lambda real: real + "x" * 600,
}


@pytest.mark.parametrize("forge", FORGED_CURSORS.values(), ids=FORGED_CURSORS.keys())
def test_forged_cursors_are_422(client, directory, forge):
    _, headers = directory
    real = client.get("/api/v1/organizations", query_string={"limit": "2"},
                      headers=headers).json["next_cursor"]
    assert real

    response = client.get("/api/v1/organizations", query_string={"cursor": forge(real)},
                          headers=headers)

    body = assert_validation_error(response, "cursor")
    assert set(body["errors"]) == {"cursor"}


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "", "1.5", "1e2", "99999999999999"])
def test_limit_out_of_range_is_422(client, directory, limit):
    _, headers = directory

    response = client.get("/api/v1/organizations", query_string={"limit": limit},
                          headers=headers)

    body = assert_validation_error(response, "limit")
    assert set(body["errors"]) == {"limit"}


@pytest.mark.parametrize(("limit", "shown"), [("1", 1), ("200", 7), ("7", 7), ("6", 6)])
def test_limit_bounds_are_accepted(client, directory, limit, shown):
    _, headers = directory

    response = client.get("/api/v1/organizations", query_string={"limit": limit},
                          headers=headers)

    assert len(names(response)) == shown
    assert (response.json["next_cursor"] is None) == (shown == len(DIRECTORY))


@pytest.mark.parametrize(("query", "field"), [
    ("foo=1", "foo"),
    ("offset=10", "offset"),
    ("page=2", "page"),
    ("Type=imh_provider", "Type"),
    ("type=imh_provider&limit=2&sort=name", "sort"),
    ("limit=1&limit=2", "limit"),
    ("type=imh_provider&type=hospital", "type"),
    ("county=Wayne&county=Wayne", "county"),
    ("q=a&q=b", "q"),
    ("type=bogus", "type"),
    ("type=IMH_PROVIDER", "type"),
    ("type=", "type"),
    ("accepting_referrals=yes", "accepting_referrals"),
    ("accepting_referrals=1", "accepting_referrals"),
    ("accepting_referrals=", "accepting_referrals"),
    ("language=not a tag", "language"),
    ("q=", "q"),
    ("q=" + "x" * 101, "q"),
    ("county=%20", "county"),
])
def test_bad_query_is_422(client, directory, query, field):
    _, headers = directory

    response = client.get(f"/api/v1/organizations?{query}", headers=headers)

    assert_validation_error(response, field)


# -- reading one entry --------------------------------------------------------------------------


def test_get_one_with_etag(client, directory):
    organizations, headers = directory
    org = organizations["Wayne County Child Welfare"]

    response = client.get(f"/api/v1/organizations/{org.id}", headers=headers)

    assert response.status_code == 200, response.json
    assert response.json == {
        "id": str(org.id), "name": "Wayne County Child Welfare", "type": "child_welfare",
        "counties": ["Wayne"], "languages": ["en", "ar"], "accepting_referrals": True,
        "capacity": None,
    }
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong, not W/"..."
    # The same version looks the same to another reader.
    again = client.get(f"/api/v1/organizations/{org.id}", headers=headers)
    assert again.headers["ETag"] == etag


def test_unknown_id_is_404(client, directory):
    _, headers = directory

    response = client.get(f"/api/v1/organizations/{uuid.uuid4()}", headers=headers)

    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "%20", "00000000-0000-0000-0000"])
def test_malformed_id_is_404(client, directory, bad_id):
    _, headers = directory

    response = client.get(f"/api/v1/organizations/{bad_id}", headers=headers)

    assert_problem(response, 404, "not-found")


def test_read_needs_directory_read(client, make):
    org = make.organization()
    token = make.token(org, ["families:read"])

    assert_problem(client.get("/api/v1/organizations", headers=bearer(token)), 403,
                   "insufficient-scope")
    assert_problem(client.get(f"/api/v1/organizations/{org.id}", headers=bearer(token)), 403,
                   "insufficient-scope")


# -- changing one's own listing -----------------------------------------------------------------


@pytest.fixture
def own(make):
    """The caller's organization, its URL and a directory:read+write token."""
    org = make.organization(name="Riverbend Infant Mental Health")
    token = make.token(org, ["directory:read", "directory:write"])
    return org, f"/api/v1/organizations/{org.id}", bearer(token)


def read(client, url, headers):
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.json
    return response.json, response.headers["ETag"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"accepting_referrals": True}, {"accepting_referrals": True}),
    ({"counties": ["Wayne", "Oakland"]}, {"counties": ["Wayne", "Oakland"]}),
    ({"counties": []}, {"counties": []}),
    ({"languages": ["es", "zh-Hant", "ar"]}, {"languages": ["es", "zh-Hant", "ar"]}),
    ({"accepting_referrals": True, "counties": ["Livingston"], "languages": ["en", "es"]},
     {"accepting_referrals": True, "counties": ["Livingston"], "languages": ["en", "es"]}),
])
def test_patch_own_listing(client, own, change, expected):
    org, url, headers = own
    before, etag_before = read(client, url, headers)

    response = client.patch(url, json=change, headers=headers)

    assert response.status_code == 200, response.json
    assert response.json == {**before, **expected}
    assert response.headers["ETag"] != etag_before
    after, etag_after = read(client, url, headers)
    assert after == response.json
    assert etag_after == response.headers["ETag"]


def test_patch_back_and_forth_gives_new_etags(client, own):
    _, url, headers = own
    tags = {read(client, url, headers)[1]}

    for value in (True, False, True):
        response = client.patch(url, json={"accepting_referrals": value}, headers=headers)
        assert response.status_code == 200
        tags.add(response.headers["ETag"])

    assert len(tags) == 4  # a version is never reused


@pytest.mark.parametrize(("capacity", "expected"), [
    ({"status": "waitlist"}, {"status": "waitlist", "waitlist": "unknown"}),
    ({"status": "waitlist", "waitlist": None}, {"status": "waitlist", "waitlist": "unknown"}),
    ({"status": "waitlist", "waitlist": "1_3_months"},
     {"status": "waitlist", "waitlist": "1_3_months"}),
    ({"status": "waitlist", "waitlist": "lt_1_month"},
     {"status": "waitlist", "waitlist": "lt_1_month"}),
    ({"status": "available"}, {"status": "available", "waitlist": None}),
    ({"status": "full"}, {"status": "full", "waitlist": None}),
    ({"status": "full", "waitlist": None}, {"status": "full", "waitlist": None}),
])
def test_patch_capacity(client, own, capacity, expected):
    _, url, headers = own
    clock.freeze(T0)

    response = client.patch(url, json={"capacity": capacity}, headers=headers)

    assert response.status_code == 200, response.json
    assert response.json["capacity"] == {**expected, "updated_at": "2026-03-02T14:05:09.123456Z"}
    assert read(client, url, headers)[0]["capacity"] == response.json["capacity"]


def test_capacity_leaving_the_waitlist_drops_its_length(client, own):
    _, url, headers = own
    clock.freeze(T0)
    client.patch(url, json={"capacity": {"status": "waitlist", "waitlist": "gt_3_months"}},
                 headers=headers)
    later = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    clock.freeze(later)

    response = client.patch(url, json={"capacity": {"status": "available"}}, headers=headers)

    assert response.json["capacity"] == {
        "status": "available", "waitlist": None, "updated_at": "2026-04-01T08:00:00.000000Z"}


@pytest.mark.parametrize("waitlist", ["lt_1_month", "1_3_months", "gt_3_months", "unknown"])
@pytest.mark.parametrize("status", ["available", "full"])
def test_waitlist_length_without_a_waitlist_is_422(client, own, status, waitlist):
    _, url, headers = own
    before = read(client, url, headers)

    response = client.patch(url, json={"capacity": {"status": status, "waitlist": waitlist}},
                            headers=headers)

    assert_validation_error(response, "capacity.waitlist")
    assert read(client, url, headers) == before


def test_stale_if_match_is_412_and_changes_nothing(client, own):
    _, url, headers = own
    _, first_etag = read(client, url, headers)
    assert client.patch(url, json={"counties": ["Wayne"]}, headers=headers).status_code == 200
    before = read(client, url, headers)
    assert before[1] != first_etag

    response = client.patch(url, json={"accepting_referrals": True, "counties": ["Kent"]},
                            headers={**headers, "If-Match": first_etag})

    assert_problem(response, 412, "precondition-failed")
    assert read(client, url, headers) == before


@pytest.mark.parametrize("if_match", ['"v999"', "W/{etag}", "{bare}", '"nonsense"'])
def test_if_match_that_is_not_the_current_strong_tag_is_412(client, own, if_match):
    _, url, headers = own
    before = read(client, url, headers)
    etag = before[1]

    response = client.patch(url, json={"accepting_referrals": True}, headers={
        **headers, "If-Match": if_match.format(etag=etag, bare=etag.strip('"'))})

    assert_problem(response, 412, "precondition-failed")
    assert read(client, url, headers) == before


@pytest.mark.parametrize("if_match", ["{etag}", '"v999", {etag}', "*"])
def test_current_if_match_is_200(client, own, if_match):
    _, url, headers = own
    _, etag = read(client, url, headers)

    response = client.patch(url, json={"accepting_referrals": True},
                            headers={**headers, "If-Match": if_match.format(etag=etag)})

    assert response.status_code == 200, response.json
    assert response.json["accepting_referrals"] is True
    assert response.headers["ETag"] != etag


def test_patch_another_organizations_listing_is_403(client, make, own):
    _, _, headers = own
    theirs = make.organization(name="Lakeshore Pediatrics")
    url = f"/api/v1/organizations/{theirs.id}"
    before = read(client, url, headers)

    response = client.patch(url, json={"accepting_referrals": True, "counties": ["Kent"]},
                            headers=headers)

    assert_problem(response, 403, "forbidden")
    assert read(client, url, headers) == before


def test_patch_another_organizations_listing_with_its_etag_is_still_403(client, make, own):
    _, _, headers = own
    theirs = make.organization(name="Lakeshore Pediatrics")
    url = f"/api/v1/organizations/{theirs.id}"
    before = read(client, url, headers)

    response = client.patch(url, json={"accepting_referrals": True},
                            headers={**headers, "If-Match": before[1]})

    assert_problem(response, 403, "forbidden")
    assert read(client, url, headers) == before


def test_patch_unknown_organization_is_404(client, own):
    _, _, headers = own

    response = client.patch(f"/api/v1/organizations/{uuid.uuid4()}",
                            json={"accepting_referrals": True}, headers=headers)

    assert_problem(response, 404, "not-found")


def test_patch_with_only_directory_read_is_403(client, make, own):
    org, url, headers = own
    reader = bearer(make.token(org, ["directory:read"]))
    before = read(client, url, headers)

    response = client.patch(url, json={"accepting_referrals": True}, headers=reader)

    assert_problem(response, 403, "insufficient-scope")
    assert read(client, url, headers) == before


def test_patch_without_a_token_is_401(client, own):
    _, url, headers = own
    before = read(client, url, headers)

    response = client.patch(url, json={"accepting_referrals": True})

    assert_problem(response, 401, "unauthorized")
    assert read(client, url, headers) == before


def test_new_organization_is_not_accepting_referrals(app, client, make):
    with app.app_context():
        created = create_organization(name="Brand New Agency", type="home_visiting")
        db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["org", "create", "--name", "Operator Added Agency",
                                 "--type", "hospital", "--county", "Kent"])
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.stdout)
    token = make.token(make.organization(name="Reader"), ["directory:read"])

    for org_id in (created.id, from_cli["id"]):
        entry, _ = read(client, f"/api/v1/organizations/{org_id}", bearer(token))
        assert entry["accepting_referrals"] is False
        assert entry["capacity"] is None
    listed = client.get("/api/v1/organizations", query_string={"accepting_referrals": "true"},
                        headers=bearer(token))
    assert names(listed) == []




@pytest.mark.parametrize(("param", "value"), [
    pytest.param("q", "\x00", id="q-nul"),
    pytest.param("q", "Wayne\x00", id="q-nul-suffix"),
    pytest.param("county", "\x00", id="county-nul"),
    pytest.param("county", "Wayne\x00", id="county-nul-suffix"),
    pytest.param("q", "\ud800", id="q-lone-surrogate"),
    pytest.param("county", "\ud800", id="county-lone-surrogate"),
])
def test_unstorable_text_in_a_filter_is_refused_not_a_wildcard(client, directory, param, value):
    _, headers = directory
    encoded = value.encode("utf-8", "surrogatepass")
    query = f"{param}=" + "".join(f"%{b:02X}" for b in encoded)

    response = client.get(f"/api/v1/organizations?{query}", headers=headers)

    if response.status_code == 200:  # matching nothing is as good as refusing it
        assert names(response) == []
    else:
        assert_validation_error(response, param)


def test_a_cursor_after_the_longest_names_is_taken_back(client, make):
    """A cursor carries the last name key: after two names of the most the operator's schema
    takes (200 characters, here of four bytes each), the next page still opens (a 512 bound
    refused the directory's own cursor with 422)."""
    from organizations.schemas import OrganizationCreateSchema

    for first in ("\U00020000", "\U00020001"):
        name = first + "".join(chr(0x20100 + (7919 * i) % 0xA000) for i in range(199))
        make.organization(name=OrganizationCreateSchema().load({"name": name})["name"])
    headers = bearer(make.token(make.organization(name="Viewer"), ["directory:read"]))

    first = client.get("/api/v1/organizations", query_string={"limit": 2}, headers=headers)
    assert [name[0] for name in names(first)] == ["V", "\U00020000"]
    cursor = first.json["next_cursor"]
    assert len(cursor) > 512
    following = client.get("/api/v1/organizations", query_string={"limit": 2, "cursor": cursor},
                           headers=headers)

    assert following.status_code == 200, following.json
    assert [name[0] for name in names(following)] == ["\U00020001"]


def test_a_cursor_of_other_characters_than_the_service_issues_is_422(client, make):
    headers = bearer(make.token(make.organization(name="Viewer"), ["directory:read"]))
    answer = client.get("/api/v1/organizations", query_string={"cursor": "é" * 1400},
                        headers=headers)
    assert_validation_error(answer, "cursor")
