"""What the duplicate warning costs a family's creation."""

from datetime import date

import pytest
from sqlalchemy import event

from core.db import db
from families.service import DUPLICATES_NAMED, create_family
from tests.conftest import _ActorOf

BORN = date(2026, 1, 15)


def _data(given_name):
    return {"child": {"given_name": given_name, "family_name": "Okafor", "birth_date": BORN,
                      "county": "Washtenaw"},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                            "relationship": "mother", "has_legal_authority": True}]}


def test_the_duplicate_check_reads_at_most_the_duplicates_it_names(app, make):
    """The names are compared in SQL: a custodian may hold thousands of children born the
    same day, and a creation must not read them all to name at most DUPLICATES_NAMED."""
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
            if "child_given_name" in statement and "FROM families" in statement \
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
