"""The duplicate warning: what it finds (the same child whatever the Unicode form of the name,
on a create and on a change that makes one), and what it costs."""

import unicodedata
from datetime import date

import pytest
from sqlalchemy import event

from core.db import db
from families.service import DUPLICATES_NAMED, create_family
from tests.conftest import _ActorOf, bearer

BORN = date(2026, 1, 15)


def _data(given_name):
    return {"child": {"given_name": given_name, "family_name": "Okafor", "birth_date": BORN,
                      "county": "Washtenaw"},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                            "relationship": "mother", "has_legal_authority": True}]}


def test_the_duplicate_check_reads_at_most_the_duplicates_it_names(app, make):
    """The names' keys are compared in SQL: a custodian may hold thousands of children born
    the same day, and a creation must not read them all to name at most DUPLICATES_NAMED."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite reports no row count for a SELECT")
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    actor = _ActorOf(clinic)
    with app.app_context():
        for n in range(DUPLICATES_NAMED * 3):
            create_family(actor, data=_data(f"Child{n}"))  # other children, the same day
        db.session.flush()
        fetched = []

        def count_rows(conn, cursor, statement, parameters, context, executemany):
            if "child_name_key" in statement and "FROM families" in statement \
                    and statement.lstrip().upper().startswith("SELECT"):
                fetched.append(cursor.rowcount)

        engine = db.session.get_bind()
        event.listen(engine, "after_cursor_execute", count_rows)
        try:
            _, warnings = create_family(actor, data=_data("Amara"))
        finally:
            event.remove(engine, "after_cursor_execute", count_rows)
        db.session.rollback()
    assert warnings == []
    assert fetched, "the duplicate check ran no query"
    assert max(fetched) <= DUPLICATES_NAMED + 1, fetched


FAMILIES = "/api/v1/families"


def _body(given_name="Amara", family_name="Okafor") -> dict:
    return {"child": {"given_name": given_name, "family_name": family_name,
                      "birth_date": "2026-03-02", "county": "Washtenaw"},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                            "relationship": "mother", "has_legal_authority": True}]}


@pytest.fixture
def headers(make):
    organization = make.organization(name="Riverbend Infant Mental Health")
    return bearer(make.token(organization, ["families:read", "families:write"]))


def _created(client, headers, body) -> dict:
    response = client.post(FAMILIES, json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def test_the_same_accented_name_in_another_unicode_form_is_a_duplicate(client, headers):
    """"José" typed on a Mac (decomposed, NFD) and on Windows (composed, NFC) is one name."""
    first = _created(client, headers, _body(unicodedata.normalize("NFC", "José"), "Núñez"))

    second = _created(client, headers, _body(unicodedata.normalize("NFD", " José"),
                                             unicodedata.normalize("NFD", "NÚÑEZ")))

    assert [w["family_ids"] for w in second["warnings"]] == [[first["id"]]]


@pytest.mark.parametrize(("first", "second"), [
    (("Nikos", "Παπαδόπουλος"), ("NIKOS", "ΠΑΠΑΔΌΠΟΥΛΟΣ")),  # a final sigma, and a capital one
    (("Jonas", "STRASSE"), ("jonas", "Straße")),            # ß is ss
    (("İlayda", "Kaya"), ("i̇layda", "KAYA")),              # a dotted capital I
    (("Amara", "Okafor"), ("AMARA ", "okafor")),
    (("Amara", "Okafor"), ("\uff21mara", "Oka\u00adfor")),           # full-width, soft hyphen
    (("Mary Anne", "Okafor"), ("Mary\u00a0Anne", "Okafor\u200b")),  # no-break space, ZWSP
])
def test_the_same_name_in_other_capitals_is_a_duplicate_in_every_script(client, headers, first,
                                                                         second):
    """Two intakes of one child, the name as two forms spelled it: the database's lower()
    took ß and ς for other letters than ss and σ (an auditors' review)."""
    held = _created(client, headers, _body(*first))

    again = _created(client, headers, _body(*second))

    assert [w["family_ids"] for w in again["warnings"]] == [[held["id"]]]


def test_names_that_differ_in_more_than_case_are_not_duplicates(client, headers):
    _created(client, headers, _body("Nikos", "Παπαδόπουλος"))

    other = _created(client, headers, _body("Nikos", "Παπαδόπουλου"))

    assert other["warnings"] == []


def test_renaming_a_child_into_one_already_held_warns_of_the_duplicate(client, headers):
    """A PATCH correcting "Amarah" to "Amara" (same birth date) makes the duplicate as surely
    as a POST would, and answers the same warning."""
    first = _created(client, headers, _body())
    second = _created(client, headers, _body(given_name="Amarah"))

    renamed = client.patch(f"{FAMILIES}/{second['id']}", headers=headers,
                           json={"child": {"given_name": "Amara"}})
    other = client.patch(f"{FAMILIES}/{second['id']}", headers=headers,
                         json={"interpreter_needed": True})

    assert renamed.status_code == 200, renamed.get_data(as_text=True)
    assert renamed.json["warnings"] == first["warnings"] + [{
        "code": "possible_duplicate", "family_ids": [first["id"]],
        "detail": "Your organization already holds a family with this child's name and "
                  "birth date"}]
    assert other.json["warnings"] == []  # `child` not sent: nothing asked about the child


@pytest.mark.no_db
def test_of_two_intakes_of_one_child_at_once_the_second_warns(served):
    """Two staff record the same child at the same moment (PostgreSQL, real connections):
    the second intake waits for the first to commit, sees it and warns, where each looked
    only at what was committed and neither warned (found by a race review: 12 of 20)."""
    import threading

    from tests.conftest import Factory
    from tests.race_support import run_until_done_or_blocked, skip_on_sqlite

    skip_on_sqlite(served)
    make = Factory(served)
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    token = make.token(clinic, ["families:write"])
    recorded, release = threading.Event(), threading.Event()
    first = {}

    def first_intake():
        with served.app_context():
            family, warnings = create_family(_ActorOf(clinic), data=_data("Amara"))
            first.update(id=family.id, warnings=warnings)
            recorded.set()
            release.wait(15)
            db.session.commit()

    first_thread = threading.Thread(target=first_intake)
    first_thread.start()
    assert recorded.wait(15)
    body = _data("Amara") | {"child": _data("Amara")["child"] | {"birth_date": BORN.isoformat()}}
    second, answers = run_until_done_or_blocked(
        served, lambda: served.test_client().post("/api/v1/families", json=body,
                                                  headers=bearer(token)),
        blocked_backends=1)
    assert "value" not in answers  # it waits for the first intake
    release.set()
    first_thread.join(15)
    second.join(15)

    assert first["warnings"] == []
    answer = answers["value"]
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert [(w["code"], w["family_ids"]) for w in answer.json["warnings"]] == [
        ("possible_duplicate", [str(first["id"])])]
