"""What the database itself refuses, whoever asks, so that a recorded consent stays as the
family gave it for as long as it is kept: no TRUNCATE, no REPLACE, no party added later, no
change to how many organizations it names."""

import pytest
import sqlalchemy as sa

from consent.models import Consent
from core.db import db


def _dialect():
    return db.engine.dialect.name


def _network(make):
    clinic = make.organization(name="Washtenaw Pediatrics", type="pediatric_primary_care")
    provider = make.organization(name="Riverbend IMH", accepting_referrals=True)
    welfare = make.organization(name="County Child Welfare", type="child_welfare")
    family = make.family(clinic)
    return clinic, provider, welfare, family


def _ids(values: dict, dialect: str) -> dict:
    """UUIDs as the dialect stores them, for raw statements (SQLite: 32 hex digits)."""
    return {key: value.hex for key, value in values.items()} if dialect == "sqlite" else values


def _replace(table: str, row: dict) -> None:
    columns = ", ".join(row)
    db.session.execute(sa.text(
        f"INSERT OR REPLACE INTO {table} ({columns}) "  # noqa: S608
        f"VALUES ({', '.join(':' + c for c in row)})"), row)


@pytest.mark.parametrize("statement", [
    "TRUNCATE consents CASCADE",
    "TRUNCATE consent_parties",
    "TRUNCATE families CASCADE",
    "TRUNCATE organizations CASCADE",
])
def test_postgresql_refuses_truncating_consents(app, make, statement):
    """TRUNCATE fires no row trigger: a statement trigger on consents and consent_parties
    refuses it, also when it cascades from the families or organizations they name."""
    clinic, provider, _, family = _network(make)
    make.consent(family, [clinic, provider])
    with app.app_context():
        if _dialect() != "postgresql":
            pytest.skip("TRUNCATE is PostgreSQL's")
        with pytest.raises(sa.exc.DatabaseError, match="consents are never deleted"), \
                db.session.begin_nested():
            db.session.execute(sa.text(statement))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Consent)) == 1


def test_sqlite_refuses_replacing_a_recorded_consent(app, make):
    """`INSERT OR REPLACE` deletes the row holding the key without firing delete triggers:
    SQLite refuses the insert of a consent id already recorded, so a revoked consent cannot
    come back active, or with more categories, under its own id."""
    clinic, provider, _, family = _network(make)
    consent = make.consent(family, [clinic, provider], revoked=True)
    with app.app_context():
        if _dialect() != "sqlite":
            pytest.skip("INSERT OR REPLACE is SQLite's")
        row = dict(db.session.execute(sa.text("SELECT * FROM consents WHERE id = :id"),
                                      {"id": consent.id.hex}).mappings().one())
        row.update(revoked_at=None, revocation_reason=None, revocation_requested_by=None,
                   revoked_by_organization_id=None,
                   categories='["child_welfare", "contact", "health", "identity"]')
        with pytest.raises(sa.exc.DatabaseError, match="immutable"), \
                db.session.begin_nested():
            _replace("consents", row)
        db.session.expire_all()
        kept = db.session.get(Consent, consent.id)
        assert kept.revoked_at is not None
        assert kept.categories == ["identity", "contact"]


def test_sqlite_refuses_replacing_a_consents_party(app, make):
    """The same for the organizations a consent names: a party row's key is never
    inserted again."""
    clinic, provider, _, family = _network(make)
    consent = make.consent(family, [clinic, provider])
    with app.app_context():
        if _dialect() != "sqlite":
            pytest.skip("INSERT OR REPLACE is SQLite's")
        row = dict(db.session.execute(sa.text(
            "SELECT * FROM consent_parties WHERE consent_id = :id AND position = 1"),
            {"id": consent.id.hex}).mappings().one())
        row["position"] = 0
        with pytest.raises(sa.exc.DatabaseError, match="immutable"), \
                db.session.begin_nested():
            _replace("consent_parties", row)
        db.session.expire_all()
        assert db.session.get(Consent, consent.id).organization_ids == [clinic.id, provider.id]


def test_the_database_refuses_a_party_added_to_a_recorded_consent(app, make):
    """A consent names the organizations it was recorded with and no others: the database
    refuses a party row past the count the consent recorded, so no organization is added
    to it later (and then shown the family)."""
    clinic, provider, welfare, family = _network(make)
    consent = make.consent(family, [clinic, provider])
    with app.app_context():
        values = _ids({"consent": consent.id, "organization": welfare.id, "family": family.id},
                      _dialect())
        with pytest.raises(sa.exc.DatabaseError, match="immutable"), \
                db.session.begin_nested():
            db.session.execute(sa.text(
                "INSERT INTO consent_parties (consent_id, organization_id, family_id, position) "
                "VALUES (:consent, :organization, :family, 2)"), values)
        db.session.expire_all()
        kept = db.session.get(Consent, consent.id)
        assert kept.organization_ids == [clinic.id, provider.id]
        assert kept.party_count == 2


@pytest.mark.parametrize("revoked", [False, True])
def test_the_database_refuses_changing_how_many_parties_a_consent_names(app, make, revoked):
    """The count is part of what a consent says: immutable like the rest of it."""
    clinic, provider, _, family = _network(make)
    consent = make.consent(family, [clinic, provider], revoked=revoked)
    with app.app_context():
        with pytest.raises(sa.exc.DatabaseError, match="immutable|never changes"), \
                db.session.begin_nested():
            db.session.execute(sa.text("UPDATE consents SET party_count = 3 WHERE id = :id"),
                               _ids({"id": consent.id}, _dialect()))
        db.session.expire_all()
        assert db.session.get(Consent, consent.id).party_count == 2


def test_consents_are_indexed_by_the_caregivers_they_name(app):
    """Removing a caregiver asks whether a consent names them as grantor or revoker, and the
    database checks both foreign keys: each is an index lookup, not a scan of every consent
    ever kept."""
    with app.app_context():
        leading = {index["column_names"][0]
                   for index in sa.inspect(db.session.connection()).get_indexes("consents")}
    assert {"grantor_caregiver_id", "revocation_caregiver_id"} <= leading, leading
