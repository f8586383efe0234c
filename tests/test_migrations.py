"""The schema comes from the migrations alone, and they agree with the models; an upgrade
carries what an older revision of the service wrote."""

import logging
import unicodedata
import uuid
from datetime import UTC, date, datetime, timedelta

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app import create_app
from core import time as clock
from core.db import db
from tests.conftest import TEST_SECRET_KEY, bearer, make_app
from tests.revision_data import SIGNING_KEY_B64, T0, populate

PROVIDER = "Riverbend Infant Mental Health"


def _differences(application):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


@pytest.mark.no_db
def test_migrations_build_the_models_schema_and_undo_cleanly(empty_database):
    application = make_app(empty_database)
    with application.app_context():
        try:
            flask_migrate.upgrade()
            assert _differences(application) == []

            flask_migrate.downgrade(revision="base")
            tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
            assert tables == set()

            flask_migrate.upgrade()
            assert _differences(application) == []
        finally:
            db.engine.dispose()


@pytest.mark.no_db
def test_one_head(app):
    assert len(app.extensions["migration_heads"]) == 1


def test_readyz_reports_the_suite_database_at_head(client, caplog):
    caplog.set_level(logging.DEBUG)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "database": "ok", "migrations": "head"}
    # A load balancer probes every few seconds: a ready answer writes no log line (alembic's
    # MigrationContext wrote two each time).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []


@pytest.mark.no_db
def test_readyz_refuses_an_unmigrated_database(tmp_path):
    application = make_app(f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}")
    response = application.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["type"] == "/problems/service-unavailable"
    assert response.headers["Retry-After"]
    with application.app_context():
        db.engine.dispose()


@pytest.mark.no_db
def test_readyz_reports_an_unreachable_database():
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    application = make_app("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    response = application.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["detail"] == "The database is unreachable"


@pytest.mark.no_db
def test_healthz_needs_no_database():
    application = make_app("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    response = application.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def _app_of_older_data(url):
    """An app that checks the checkpoints the older service signed with its key."""
    return create_app({
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": TEST_SECRET_KEY,
        "LOG_LEVEL": "WARNING", "AUDIT_CHECKPOINT_INTERVAL": 0, "AUDIT_SEAL_INTERVAL_MS": 0,
        "AUDIT_SIGNING_KEY": SIGNING_KEY_B64,
        "RATE_LIMIT_API": "1000000 per minute", "RATE_LIMIT_TOKEN": "1000000 per minute"})


def _seeded(revision: str = "0010"):
    """The revision data written at `revision` (the app's context entered): its ids."""
    flask_migrate.upgrade(revision=revision)
    with db.engine.connect() as connection:
        return populate(connection, revision)


@pytest.mark.no_db
def test_a_pause_after_the_upgrade_is_rounded_up_together_with_the_pauses_before(
        empty_database):
    """Pauses push the 45 days back by the time paused in all, in whole days rounded up
    once: a referral paused 5 minutes under 0009 (its date pushed back 1 day) and 5 minutes
    more after the upgrade has been paused 10 minutes in all, which is one day, not two."""
    application = _app_of_older_data(empty_database)
    try:
        with application.app_context():
            seeded = _seeded("0009")
            flask_migrate.upgrade()
            db.session.remove()
        referral_id = seeded.referrals["resumed_once"]
        web = application.test_client()
        as_provider = bearer(seeded.tokens[PROVIDER])
        start = T0 + timedelta(days=10)
        clock.freeze(start)
        read = web.get(f"/api/v1/referrals/{referral_id}", headers=as_provider)
        assert read.status_code == 200
        received_on = date.fromisoformat(read.json["part_c"]["received_on"])
        # 45 days from receipt, plus the 1 day its 5-minute hold added under 0009.
        assert read.json["part_c"]["timeline_due_by"] == str(received_on + timedelta(days=46))

        held = web.post(f"/api/v1/referrals/{referral_id}/transitions",
                        json={"status": "on_hold", "reason": "awaiting_consent",
                              "note": "Called twice about the consent form."},
                        headers={**as_provider, "If-Match": read.headers["ETag"]})
        assert held.status_code == 200, held.json
        assert held.json["part_c"]["timeline_paused_since"] is not None
        clock.freeze(start + timedelta(minutes=5))
        resumed = web.post(f"/api/v1/referrals/{referral_id}/transitions",
                           json={"status": "in_progress", "business_status": "engaged"},
                           headers={**as_provider, "If-Match": held.headers["ETag"]})
        assert resumed.status_code == 200, resumed.json
        assert resumed.json["part_c"]["timeline_due_by"] == \
            str(received_on + timedelta(days=46))
    finally:
        clock.freeze(None)
        with application.app_context():
            db.engine.dispose()


_referrals = sa.table("referrals", sa.column("id", sa.Uuid()),
                      sa.column("timeline_due_by", sa.Date()),
                      sa.column("timeline_paused_seconds", sa.Integer()))
_consents = sa.table("consents", sa.column("id", sa.Uuid()),
                     sa.column("revoked_at", sa.DateTime()),
                     sa.column("party_count", sa.Integer()))
_parties = sa.table("consent_parties", sa.column("consent_id", sa.Uuid()))


@pytest.mark.no_db
def test_the_upgrade_to_0011_counts_parties_and_carries_no_pause_it_cannot_replay(
        empty_database):
    """Every consent, revoked ones too, records how many parties it names. A referral's
    paused time is carried only where replaying its timeline gives its own due date again:
    one dated otherwise (here a day later than its 5-minute pause made it) keeps 0, and no
    due date moves."""
    application = make_app(empty_database)
    with application.app_context():
        try:
            flask_migrate.upgrade(revision="0010")
            with db.engine.connect() as connection:
                seeded = populate(connection, "0010")
                resumed = seeded.referrals["resumed_once"]
                dated = connection.scalar(sa.select(_referrals.c.timeline_due_by)
                                          .where(_referrals.c.id == resumed))
                connection.execute(_referrals.update().where(_referrals.c.id == resumed)
                                   .values(timeline_due_by=dated + timedelta(days=1)))
                due = {r.id: r.timeline_due_by for r in connection.execute(sa.select(_referrals))}
                connection.commit()
            # Up to 0021, which recounts every clock from delivery (its own test).
            flask_migrate.upgrade(revision="0020")
            with db.engine.connect() as connection:
                carried = connection.execute(sa.select(_referrals)).all()
                consents = connection.execute(sa.select(_consents)).all()
                named = dict(connection.execute(
                    sa.select(_parties.c.consent_id, sa.func.count())
                    .group_by(_parties.c.consent_id)).all())
        finally:
            db.engine.dispose()
    assert {r.id: r.timeline_due_by for r in carried} == due
    assert all(r.timeline_paused_seconds == 0 for r in carried)
    assert {c.id: c.party_count for c in consents} == named
    assert set(named.values()) == {2}
    assert sum(c.revoked_at is not None for c in consents) == 1


_organizations = sa.table("organizations", sa.column("id", sa.Uuid()),
                          sa.column("name", sa.String()), sa.column("name_key", sa.String()),
                          sa.column("counties", sa.JSON()), sa.column("languages", sa.JSON()),
                          sa.column("version", sa.Integer()))
_families = sa.table("families", sa.column("id", sa.Uuid()),
                     sa.column("child_given_name", sa.String()),
                     sa.column("preferred_language", sa.String()),
                     sa.column("version", sa.Integer()))
_caregivers = sa.table("caregivers", sa.column("id", sa.Uuid()),
                       sa.column("family_id", sa.Uuid()), sa.column("given_name", sa.String()))


@pytest.mark.no_db
def test_the_upgrade_to_0014_keeps_text_and_tags_as_the_service_now_loads_them(
        empty_database):
    """Names an older service stored decomposed or with stray spaces, counties with a space,
    tags in any case: after the upgrade, `q` and `county` find them as sent today, the
    duplicate check meets the stored name, and each changed row has a new version."""
    application = _app_of_older_data(empty_database)
    decomposed = unicodedata.normalize("NFD", "Clínica Familiar")
    try:
        with application.app_context():
            seeded = _seeded()  # the newest revision populate writes
            flask_migrate.upgrade(revision="0013")
            with db.engine.connect() as connection:
                provider = seeded.organizations[PROVIDER]
                family = seeded.families[0]
                connection.execute(_organizations.update()
                                   .where(_organizations.c.id == provider)
                                   .values(name=decomposed, name_key=decomposed.casefold(),
                                           counties=["Washtenaw", "Wayne ", "wayne"],
                                           languages=["EN", "ES-mx"]))
                connection.execute(_families.update().where(_families.c.id == family["id"])
                                   .values(child_given_name=unicodedata.normalize(
                                       "NFD", " José "), preferred_language="ES-mx"))
                connection.execute(_caregivers.update()
                                   .where(_caregivers.c.id == family["caregivers"][0])
                                   .values(given_name="Ngozi  "))
                versions = {r.id: r.version for r in connection.execute(sa.select(_families))}
                connection.commit()
            flask_migrate.upgrade()
            db.session.remove()
        web = application.test_client()
        headers = bearer(seeded.tokens[PROVIDER])
        clinic = bearer(seeded.tokens["eagle Pediatrics"])
        found = web.get("/api/v1/organizations", headers=headers,
                        query_string={"q": "clínica", "county": "Wayne"})
        record = web.get(f"/api/v1/families/{family['id']}", headers=clinic)
        twin = web.post("/api/v1/families", headers=clinic, json={
            "child": {"given_name": "José", "family_name": record.json["child"]["family_name"],
                      "birth_date": record.json["child"]["birth_date"]},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                            "relationship": "mother"}]})
        with application.app_context(), db.engine.connect() as connection:
            after = {r.id: r.version for r in connection.execute(sa.select(_families))}
    finally:
        with application.app_context():
            db.engine.dispose()
    assert found.status_code == 200, found.json
    [entry] = found.json["items"]
    assert (entry["name"], entry["counties"], entry["languages"]) == \
        ("Clínica Familiar", ["Washtenaw", "Wayne"], ["en", "es-MX"])
    assert record.json["child"]["given_name"] == "José"
    assert record.json["preferred_language"] == "es-MX"
    assert record.json["caregivers"][0]["given_name"] == "Ngozi"
    assert record.json["caregivers"][0]["relationship_description"] is None
    assert twin.status_code == 201, twin.json
    assert [w["family_ids"] for w in twin.json["warnings"]] == [[str(family["id"])]]
    assert {k: after[k] - v for k, v in versions.items()} == \
        {k: int(k == family["id"]) for k in versions}


@pytest.mark.no_db
def test_the_upgrade_to_0015_refuses_organizations_listed_twice_naming_them(empty_database):
    """Organizations an older service listed twice under one name (whatever its case) and
    type stop the upgrade before it changes anything, named, so that operators choose which
    entry partners keep; once they differ, the upgrade makes the names unique."""
    application = make_app(empty_database)
    twins = [uuid.uuid4(), uuid.uuid4()]
    rows = [{"id": twins[0], "name": "Kent Clinic", "name_key": "kent clinic"},
            {"id": twins[1], "name": "KENT CLINIC", "name_key": "kent clinic"},
            {"id": uuid.uuid4(), "name": "Kent Clinic", "name_key": "kent clinic",
             "type": "imh_provider"}]
    table = sa.table("organizations", sa.column("id", sa.Uuid()), sa.column("name"),
                     sa.column("name_key"), sa.column("type"), sa.column("counties", sa.JSON()),
                     sa.column("languages", sa.JSON()), sa.column("accepting_referrals"),
                     sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("version"))
    try:
        with application.app_context():
            flask_migrate.upgrade(revision="0014")
            with db.engine.begin() as connection:
                at = clock.now()
                connection.execute(table.insert(), [
                    {"type": "hospital", **row, "counties": [], "languages": [],
                     "accepting_referrals": False, "created_at": at, "updated_at": at,
                     "version": 1} for row in rows])
            with pytest.raises(RuntimeError) as refused:
                flask_migrate.upgrade.__wrapped__()  # the error itself, not its exit
            with db.engine.connect() as connection:
                revision = MigrationContext.configure(connection).get_current_revision()
            with db.engine.begin() as connection:
                connection.execute(table.update().where(table.c.id == twins[1])
                                   .values(name="Kent Clinic North",
                                           name_key="kent clinic north"))
            flask_migrate.upgrade()
            with db.engine.connect() as connection:
                upgraded = MigrationContext.configure(connection).get_current_revision()
                with pytest.raises(sa.exc.IntegrityError):
                    connection.execute(table.update().where(table.c.id == twins[1])
                                       .values(name_key="kent clinic"))
    finally:
        with application.app_context():
            db.engine.dispose()
    assert revision == "0014"
    assert all(str(twin) in str(refused.value) for twin in twins)
    assert "Kent Clinic" in str(refused.value) and "hospital" in str(refused.value)
    assert upgraded == next(iter(application.extensions["migration_heads"]))


@pytest.mark.no_db
def test_the_upgrade_to_0016_counts_part_c_days_in_the_service_time_zone(empty_database):
    """Each running 45-day clock is recounted from the day its referral was received in
    TIME_ZONE: one received at 22:30 in Michigan (02:30 UTC the next day) was a day long and
    loses it, its pauses kept; the rows that change take a new version, the others keep
    theirs."""
    application = _app_of_older_data(empty_database)
    table = sa.table("referrals", sa.column("id", sa.Uuid()),
                     sa.column("received_at", sa.DateTime(timezone=True)),
                     sa.column("timeline_due_by", sa.Date()),
                     sa.column("timeline_paused_seconds", sa.Integer()),
                     sa.column("version", sa.Integer()), sa.column("status", sa.String()),
                     sa.column("updated_at", sa.DateTime(timezone=True)))
    evening = datetime(2026, 6, 11, 2, 30, tzinfo=UTC)  # 22:30 EDT, 10 June
    try:
        with application.app_context():
            flask_migrate.upgrade(revision="0010")
            with db.engine.connect() as connection:
                populate(connection, "0010")
            flask_migrate.upgrade(revision="0015")
            with db.engine.begin() as connection:
                clocked = connection.execute(sa.select(table).where(
                    table.c.timeline_due_by.is_not(None))).all()
                assert len(clocked) >= 3
                late, kept, closed = clocked[0], clocked[1], clocked[2]
                connection.execute(table.update().where(table.c.id.in_([late.id, kept.id]))
                                   .values(status="in_progress"))
                # A closed referral's clock no longer runs: left as it was.
                connection.execute(table.update().where(table.c.id == closed.id).values(
                    status="completed", received_at=evening, timeline_due_by=date(2026, 7, 26)))
                # As 0015 counted it: from the UTC date, 11 June, with a day paused.
                connection.execute(table.update().where(table.c.id == late.id).values(
                    received_at=evening, timeline_paused_seconds=300,
                    timeline_due_by=date(2026, 7, 27)))
                noon = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
                connection.execute(table.update().where(table.c.id == kept.id).values(
                    received_at=noon, timeline_paused_seconds=0,
                    timeline_due_by=date(2026, 7, 25)))
            # Up to 0021, which recounts every clock from delivery (its own test).
            flask_migrate.upgrade(revision="0020")
            with db.engine.connect() as connection:
                after = {r.id: r for r in connection.execute(sa.select(table).where(
                    table.c.id.in_([late.id, kept.id, closed.id])))}
    finally:
        with application.app_context():
            db.engine.dispose()
    assert after[late.id].timeline_due_by == date(2026, 7, 26)  # 10 June + 45 + 1 paused
    assert after[late.id].version == late.version + 1
    # Changed now: a partner polling updated_since learns of it.
    def aware(at):
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    assert aware(after[late.id].updated_at) > aware(late.updated_at)
    assert aware(after[kept.id].updated_at) == aware(kept.updated_at)
    assert (after[kept.id].timeline_due_by, after[kept.id].version) == \
        (date(2026, 7, 25), kept.version)
    assert (after[closed.id].timeline_due_by, after[closed.id].version) == \
        (date(2026, 7, 26), closed.version)


@pytest.mark.no_db
def test_the_upgrade_to_0017_keys_the_names_listed_before_it_for_q(empty_database):
    """The organizations listed before 0017 are found by `q` as new ones are: their
    search_key filled from their names, accents and case left out."""
    application = make_app(empty_database)
    table = sa.table("organizations", sa.column("id", sa.Uuid()), sa.column("name"),
                     sa.column("name_key"), sa.column("type"), sa.column("counties", sa.JSON()),
                     sa.column("languages", sa.JSON()), sa.column("accepting_referrals"),
                     sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("version"))
    listed = uuid.uuid4()
    try:
        with application.app_context():
            flask_migrate.upgrade(revision="0016")
            with db.engine.begin() as connection:
                at = clock.now()
                connection.execute(table.insert(), [{
                    "id": listed, "name": "Clínica Familiar del Niño",
                    "name_key": "clínica familiar del niño", "type": "imh_provider",
                    "counties": [], "languages": [], "accepting_referrals": True,
                    "created_at": at, "updated_at": at, "version": 1}])
            flask_migrate.upgrade()
            with db.engine.connect() as connection:
                keyed = connection.execute(sa.text(
                    "SELECT search_key FROM organizations WHERE name = :name"),
                    {"name": "Clínica Familiar del Niño"}).scalar_one()
            from organizations.service import list_organizations
            found = [o.id for o in list_organizations(q="CLINICA familiar del nino",
                                                      limit=10).items]
            db.session.rollback()
    finally:
        with application.app_context():
            db.engine.dispose()
    assert keyed == "clinica familiar del nino"
    assert found == [listed]


@pytest.mark.no_db
def test_the_upgrade_to_0018_keys_the_children_recorded_before_it_for_the_duplicate_check(
        empty_database):
    """A child recorded before 0018 is found as a likely duplicate as a new one is: its
    `child_name_key` filled from its names, case-folded in Python."""
    application = _app_of_older_data(empty_database)
    try:
        with application.app_context():
            # The revision data's last revision: its rows then go through every later one.
            seeded = _seeded()
            flask_migrate.upgrade()
            with db.engine.connect() as connection:
                keys = dict(connection.execute(sa.text(
                    "SELECT child_given_name, child_name_key FROM families")).all())
            db.session.remove()
        again = application.test_client().post("/api/v1/families", json={
            "child": {"given_name": "ZOË", "family_name": "NGATA-BROWN",
                      "birth_date": "2026-03-03"},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Ngata-Brown",
                            "relationship": "mother", "has_legal_authority": True}]},
            headers=bearer(seeded.tokens["eagle Pediatrics"]))
    finally:
        with application.app_context():
            db.engine.dispose()
    assert keys == {"Amara": "amara\nokafor", "Zoë": "zoë\nngata-brown", "Li": "li\nwei"}
    assert again.status_code == 201, again.get_data(as_text=True)
    assert [w["family_ids"] for w in again.json["warnings"]] == [[str(seeded.families[1]["id"])]]


_ORGANIZATIONS = sa.table(
    "organizations", sa.column("id", sa.Uuid()), sa.column("name"), sa.column("name_key"),
    sa.column("type"), sa.column("counties", sa.JSON()), sa.column("languages", sa.JSON()),
    sa.column("accepting_referrals"), sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("version"))


def _listed_at(connection, rows) -> None:
    at = clock.now()
    connection.execute(_ORGANIZATIONS.insert(), [
        {"id": uuid.uuid4(), "type": "imh_provider", **row, "counties": [], "languages": [],
         "accepting_referrals": False, "created_at": at, "updated_at": at, "version": 1}
        for row in rows])


@pytest.mark.no_db
def test_the_upgrade_to_0019_keys_look_alike_names_as_one_and_refuses_listed_twins(
        empty_database):
    """The organizations listed before 0019 are keyed as the service now keys them (the
    directory's order); look-alikes an older service listed twice stop the upgrade before
    it changes anything, named, as 0015 did for names that differed in case."""
    application = make_app(empty_database)
    twin = uuid.uuid4()
    try:
        with application.app_context():
            flask_migrate.upgrade(revision="0018")
            with db.engine.begin() as connection:
                _listed_at(connection, [
                    {"name": "Ｋent Clinic", "name_key": "ｋent clinic"},
                    {"id": twin, "name": "Kent\u00a0Clinic", "name_key": "kent\u00a0clinic"},
                    {"name": "Lake  Clinic", "name_key": "lake  clinic"}])
            with pytest.raises(RuntimeError) as refused:
                flask_migrate.upgrade.__wrapped__()  # the error itself, not its exit
            with db.engine.begin() as connection:
                revision = MigrationContext.configure(connection).get_current_revision()
                connection.execute(_ORGANIZATIONS.update().where(_ORGANIZATIONS.c.id == twin)
                                   .values(type="hospital"))
            flask_migrate.upgrade()
            with db.engine.connect() as connection:
                keys = dict(connection.execute(sa.select(_ORGANIZATIONS.c.name,
                                                         _ORGANIZATIONS.c.name_key)).all())
            flask_migrate.downgrade(revision="0018")
            with db.engine.connect() as connection:
                undone = dict(connection.execute(sa.select(_ORGANIZATIONS.c.name,
                                                           _ORGANIZATIONS.c.name_key)).all())
    finally:
        with application.app_context():
            db.engine.dispose()
    assert revision == "0018"
    assert str(twin) in str(refused.value) and "imh_provider" in str(refused.value)
    assert keys == {"Ｋent Clinic": "kent clinic", "Kent\u00a0Clinic": "kent clinic",
                    "Lake  Clinic": "lake clinic"}
    assert undone == {"Ｋent Clinic": "ｋent clinic", "Kent\u00a0Clinic": "kent\u00a0clinic",
                      "Lake  Clinic": "lake  clinic"}


#: The referrals' columns 0021 reads and writes, as the tests of it see them.
_REFERRALS_0021 = sa.table(
    "referrals", sa.column("id", sa.Uuid()), sa.column("status", sa.String()),
    sa.column("from_organization_id", sa.Uuid()), sa.column("to_organization_id", sa.Uuid()),
    sa.column("sent_at", sa.DateTime(timezone=True)),
    sa.column("received_at", sa.DateTime(timezone=True)), sa.column("timeline_due_by", sa.Date()),
    sa.column("timeline_paused_since", sa.DateTime(timezone=True)),
    sa.column("timeline_paused_seconds", sa.Integer()), sa.column("version", sa.Integer()),
    sa.column("updated_at", sa.DateTime(timezone=True)))


@pytest.mark.no_db
def test_the_upgrade_to_0021_replays_the_timeline_from_delivery(empty_database):
    """Two referrals with one history, as 0020 counted it from acknowledgement: delivered
    1 June, acknowledged 11 June (due 26 July), held for the family's circumstances on
    20 July, one of them resumed on 25 July (5 days paused: due 31 July). Counted from
    delivery the clock ran out on 16 July, before the hold: the hold paused nothing, ended or
    not, and both are due 16 July (keeping the ended pause gave 21 July, a review)."""
    application = _app_of_older_data(empty_database)
    referrals = _REFERRALS_0021
    delivered = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # noon in Michigan
    acknowledged, held, resumed_at = (datetime(2026, 6, 11, 16, 0, tzinfo=UTC),
                                      datetime(2026, 7, 20, 16, 0, tzinfo=UTC),
                                      datetime(2026, 7, 25, 16, 0, tzinfo=UTC))
    try:
        with application.app_context():
            seeded = _seeded()
            flask_migrate.upgrade(revision="0020")
            resumed, still_held = seeded.referrals["in_progress"], seeded.referrals["accepted"]
            steps = sa.table("referral_events", sa.column("id", sa.Uuid()),
                             sa.column("referral_id", sa.Uuid()),
                             sa.column("referral_version", sa.Integer()),
                             sa.column("occurred_at", sa.DateTime(timezone=True)),
                             sa.column("to_status", sa.String()), sa.column("reason", sa.String()),
                             sa.column("organization_id", sa.Uuid()))
            with db.engine.begin() as connection:
                for referral, moves, stored in (
                        (resumed, [("requested", None, delivered), ("received", None, acknowledged),
                                   ("on_hold", "family_circumstances", held),
                                   ("in_progress", None, resumed_at)],
                         dict(timeline_due_by=date(2026, 7, 31), timeline_paused_since=None,
                              timeline_paused_seconds=5 * 86400)),
                        (still_held, [("requested", None, delivered),
                                      ("received", None, acknowledged),
                                      ("on_hold", "family_circumstances", held)],
                         dict(timeline_due_by=date(2026, 7, 26), timeline_paused_since=held,
                              timeline_paused_seconds=0))):
                    row = connection.execute(sa.select(referrals).where(
                        referrals.c.id == referral)).one()
                    connection.execute(steps.delete().where(steps.c.referral_id == referral))
                    for version, (to, reason, at) in enumerate(moves, start=1):
                        connection.execute(steps.insert().values(
                            id=uuid.uuid4(), referral_id=referral, referral_version=version,
                            occurred_at=at, to_status=to, reason=reason,
                            organization_id=row.from_organization_id if version == 1
                            else row.to_organization_id))
                    connection.execute(referrals.update().where(referrals.c.id == referral)
                                       .values(sent_at=delivered, received_at=acknowledged,
                                               **stored))
            flask_migrate.upgrade()
            with db.engine.connect() as connection:
                after = {r.id: r for r in connection.execute(sa.select(referrals))}
            db.session.remove()
    finally:
        with application.app_context():
            db.engine.dispose()
    for referral in (resumed, still_held):
        assert (after[referral].timeline_due_by, after[referral].timeline_paused_since,
                after[referral].timeline_paused_seconds) == (date(2026, 7, 16), None, 0)


@pytest.mark.no_db
def test_the_upgrade_to_0021_counts_part_c_s_45_days_from_delivery(empty_database):
    """Each sent Part C referral's 45 days are recounted from the day it was delivered: one
    acknowledged 10 days after delivery loses those 10 days (its paused day kept), one never
    acknowledged gets the clock it lacked, a pause begun after the recounted day ends
    uncounted, one acknowledged the day it came keeps its row; a draft has no clock yet. The
    rows that change take a new version and are changed now, and the service then lists the
    late ones as overdue."""
    application = _app_of_older_data(empty_database)
    table = _REFERRALS_0021
    delivered = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # noon in Michigan, 1 June
    ten_days_on = delivered + timedelta(days=10)
    try:
        with application.app_context():
            seeded = _seeded()
            flask_migrate.upgrade(revision="0020")
            ids = seeded.referrals
            late, unacknowledged, paused, kept, draft = (
                ids["in_progress"], ids["requested"], ids["on_hold_paused"], ids["accepted"],
                ids["draft"])
            with db.engine.begin() as connection:
                # As 0020 counted them: from acknowledgement, a day paused for `late`.
                connection.execute(table.update().where(table.c.id == late).values(
                    sent_at=delivered, received_at=ten_days_on, timeline_paused_seconds=300,
                    timeline_due_by=date(2026, 7, 27)))
                connection.execute(table.update().where(table.c.id == unacknowledged).values(
                    sent_at=delivered, received_at=None, timeline_due_by=None))
                # Acknowledged on day 10, paused since day 50 (before its old day 55).
                connection.execute(table.update().where(table.c.id == paused).values(
                    sent_at=delivered, received_at=ten_days_on, timeline_due_by=date(2026, 7, 26),
                    timeline_paused_since=delivered + timedelta(days=50)))
                connection.execute(table.update().where(table.c.id == kept).values(
                    sent_at=delivered, received_at=delivered + timedelta(hours=2),
                    timeline_due_by=date(2026, 7, 16)))
                before = {r.id: r for r in connection.execute(sa.select(table))}
            flask_migrate.upgrade()
            with db.engine.connect() as connection:
                after = {r.id: r for r in connection.execute(sa.select(table))}
            db.session.remove()
        clock.freeze(delivered + timedelta(days=60))
        listed = application.test_client().get(
            "/api/v1/referrals?overdue=true&direction=received",
            headers=bearer(seeded.tokens[PROVIDER]))
        assert listed.status_code == 200, listed.json
    finally:
        clock.freeze(None)
        with application.app_context():
            db.engine.dispose()

    def utc(at):
        return None if at is None else at if at.tzinfo else at.replace(tzinfo=UTC)

    assert after[late].timeline_due_by == date(2026, 7, 17)  # 1 June + 45 + 1 paused
    assert after[unacknowledged].timeline_due_by == date(2026, 7, 16)
    assert (after[paused].timeline_due_by, after[paused].timeline_paused_since) == (
        date(2026, 7, 16), None)
    for changed in (late, unacknowledged, paused):
        assert after[changed].version == before[changed].version + 1
        assert utc(after[changed].updated_at) > utc(before[changed].updated_at)
    for same in (kept, draft):
        assert after[same] == before[same]
    assert after[draft].timeline_due_by is None
    # Late, every one, 60 days after delivery (the others were delivered months later).
    assert {item["id"] for item in listed.json["items"]} == {
        str(late), str(unacknowledged), str(paused), str(kept)}
