"""One event naming several families: stored, hashed alike by Python and PostgreSQL, found by
the family filters, shown wherever an event is rendered, append-only."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import flask_migrate
import pytest
import sqlalchemy as sa

import audit
from audit.chain import event_hash, verify
from audit.models import AuditEvent, AuditListedFamily
from audit.recorder import _append_to_chain
from core import time as clock
from core.db import db
from tests.conftest import audit_events, bearer, make_app

A = uuid.UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
B = uuid.UUID("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
C = uuid.UUID("cccccccc-cccc-4ccc-8ccc-cccccccccccc")

#: An event with every kind of field, hashed by the code before `family_ids` existed.
GOLDEN = {
    "action": "search", "categories": ["contact", "identity"], "client_id": "client-é",
    "consent_ids": ["22222222-2222-4222-8222-222222222222"],
    "family_id": uuid.UUID("11111111-1111-4111-8111-111111111111"),
    "id": uuid.UUID("33333333-3333-4333-8333-333333333333"),
    "organization_id": uuid.UUID("44444444-4444-4444-8444-444444444444"),
    "outcome": "permit", "prev_hash": "0" * 64, "purpose": "referral", "reason": "consent",
    "recorded_at": datetime(2026, 11, 25, 12, 30, 1, 123456, tzinfo=UTC),
    "request_id": "req-1", "request_ip": "10.0.0.1", "request_method": "GET",
    "request_path": "/api/v1/referrals", "resource_id": None, "resource_type": "referral",
    "seq": 7, "token_id": None,
}
GOLDEN_HASH = "fb9ebf9d9d8b99303387922ff7aed62c66d648fe95642beea9992d60ca2723fc"


def _values(event) -> dict:
    return {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}


def _record_listing(*families, **fields):
    """A consented page of a list that disclosed `families`."""
    fields = {"action": "search", "outcome": "permit", "reason": "consent",
              "resource_type": "referral", "purpose": "referral", "categories": ["identity"],
              **fields}
    audit.record(family_ids=families, **fields)
    db.session.commit()


def _listed(seq) -> list:
    return sorted(db.session.scalars(sa.select(AuditListedFamily.family_id)
                                     .where(AuditListedFamily.seq == seq)))


# -- storing ------------------------------------------------------------------------------

def test_family_ids_are_stored_once_each_sorted_as_lowercase_strings(app):
    with app.app_context():
        _record_listing(C, str(A).upper(), B, A, reason="stored")
        [event] = audit_events(reason="stored")
        assert event.family_ids == [str(A), str(B), str(C)]
        assert _listed(event.seq) == [A, B, C]


def test_an_event_without_family_ids_has_an_empty_list_and_no_listed_family(app):
    with app.app_context():
        audit.record(action="read", outcome="permit", reason="single", resource_type="family",
                     family_id=A)
        db.session.commit()
        [event] = audit_events(reason="single")
        assert event.family_ids == []
        assert _listed(event.seq) == []


def test_a_family_id_that_is_no_uuid_is_refused(app):
    with app.app_context(), pytest.raises(ValueError):
        audit.record(action="search", outcome="permit", reason="bad", resource_type="referral",
                     family_ids=["not-a-uuid"])


# -- hashing ------------------------------------------------------------------------------

def test_an_event_without_family_ids_hashes_as_before_the_field_existed():
    assert event_hash(GOLDEN) == GOLDEN_HASH
    assert event_hash({**GOLDEN, "family_ids": []}) == GOLDEN_HASH


def test_family_ids_are_one_more_element_at_the_end_of_the_canonical_array():
    import hashlib

    from audit.chain import _canonical_values, _encode

    before = _encode(_canonical_values(GOLDEN))
    expected = before[:-1] + f', ["{A}", "{B}"]]'
    values = {**GOLDEN, "family_ids": [str(A), str(B)]}
    assert _encode(_canonical_values(values)) == expected
    assert event_hash(values) == hashlib.sha256(expected.encode()).hexdigest()
    assert event_hash(values) != GOLDEN_HASH


_JSONB = ("categories", "consent_ids", "family_ids")


def _sql_hash(values: dict) -> str:
    """PostgreSQL's audit_event_hash of `values`; a missing `family_ids` is SQL NULL."""
    from audit.chain import HASHED_FIELDS

    arguments = {name: values.get(name) for name in HASHED_FIELDS}
    for name in _JSONB:
        if name in values:
            arguments[name] = json.dumps(values[name])
    placeholders = ", ".join(f"CAST(:{n} AS jsonb)" if n in _JSONB else f":{n}"
                             for n in HASHED_FIELDS)
    return db.session.scalar(sa.text(f"SELECT audit_event_hash({placeholders})"), arguments)


@pytest.mark.parametrize("family_ids", [
    "absent", [], None, [str(A), str(B)], [str(B), str(A)], ["é 😀", 'say "hi"\n'],
    # What a forger might store instead: both sides must still hash it alike.
    {}, "", 0, False, [1, None], {"a": [str(A)]},
])
def test_postgresql_hashes_any_family_ids_as_python_does(app, family_ids):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("audit_event_hash is PostgreSQL's")
        values = dict(GOLDEN) if family_ids == "absent" else {**GOLDEN,
                                                              "family_ids": family_ids}
        assert _sql_hash(values) == event_hash(values)
        if family_ids in ("absent", [], None):
            assert _sql_hash(values) == GOLDEN_HASH


def test_an_event_chained_by_the_database_verifies_in_python(app):
    """On PostgreSQL its trigger chains the event; Python recomputes the same hash."""
    with app.app_context():
        _record_listing(A, B, reason="by the database")
        [event] = audit_events(reason="by the database")
        assert event.family_ids == [str(A), str(B)]
        assert event_hash(_values(event)) == event.hash
        assert verify(db.session).valid


def test_an_event_chained_by_python_verifies_in_the_database(app):
    """Python chains the event (as on SQLite); PostgreSQL's set-based verify agrees."""
    with app.app_context():
        values = {"id": uuid.uuid4(), "recorded_at": clock.now(), "action": "search",
                  "outcome": "permit", "reason": "by python", "organization_id": None,
                  "client_id": "c", "token_id": None, "purpose": "referral",
                  "resource_type": "referral", "resource_id": None, "family_id": None,
                  "categories": ["identity"], "consent_ids": [],
                  "family_ids": [str(A), str(C)], "request_id": None, "request_method": None,
                  "request_path": None, "request_ip": None}
        _append_to_chain(db.session.connection(), [values])
        [event] = audit_events(reason="by python")
        assert event.hash == event_hash(_values(event))
        assert _listed(event.seq) == [A, C]  # the trigger indexed it on either database
        verdict = verify(db.session)
        assert verdict.valid, verdict


def test_an_exported_event_with_family_ids_verifies_offline(app, client, make):
    """An auditor holding only the NDJSON recomputes each hash with audit/chain.py."""
    auditor = make.token(make.organization(name="Privacy Office", type="community_other"),
                         ["audit:read"])
    with app.app_context():
        _record_listing(A, B, reason="exported")
    since = (clock.now() - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    until = (clock.now() + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    answer = client.get(f"/api/v1/audit/export?since={since}&until={until}",
                        headers=bearer(auditor))
    lines = [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]
    assert all(isinstance(line["family_ids"], list) for line in lines)
    [exported] = [line for line in lines if line["reason"] == "exported"]
    assert exported["family_ids"] == [str(A), str(B)]
    for line in lines:
        values = {**line, **line["actor"],
                  "recorded_at": datetime.fromisoformat(line["recorded_at"]),
                  "resource_type": line["resource"]["type"],
                  "resource_id": line["resource"]["id"],
                  **{f"request_{k}": v for k, v in line["request"].items()}}
        assert event_hash(values) == line["hash"], line["seq"]


@pytest.mark.no_db
def test_chains_written_before_the_field_still_verify_after_the_migration(empty_database):
    """Events chained at revision 0005 (on PostgreSQL by 0004's trigger and function) verify
    at head, and the chain goes on with events that list families."""
    from audit.models import AuditPending
    from audit.sealer import seal

    application = make_app(empty_database)
    with application.app_context():
        try:
            flask_migrate.upgrade(revision="0005")
            # Core inserts of the columns named only: the table has no family_ids yet.
            old = [{"id": uuid.uuid4(), "recorded_at": datetime(2026, 1, day, tzinfo=UTC),
                    "action": "read", "outcome": "permit", "reason": "old",
                    "resource_type": "family", "family_id": family,
                    "categories": ["identity"], "consent_ids": []}
                   for day, family in ((1, A), (2, None))]
            if db.engine.dialect.name == "postgresql":
                for values in old:
                    db.session.execute(sa.insert(AuditPending.__table__).values(**values))
                    db.session.commit()  # 0004's trigger chains it with 0004's function
            else:
                prev = "0" * 64
                for seq, values in enumerate(old, start=1):
                    values.update(seq=seq, prev_hash=prev)
                    values["hash"] = prev = event_hash(values)
                    db.session.execute(sa.insert(AuditEvent.__table__).values(**values))
                    db.session.execute(sa.text("UPDATE audit_chain_head SET seq = :seq, "
                                               "hash = :hash"), {"seq": seq, "hash": prev})
                db.session.commit()
            db.session.remove()

            flask_migrate.upgrade()
            stored = audit_events()
            assert [e.family_ids for e in stored] == [[], []]
            assert all(event_hash(_values(e)) == e.hash for e in stored)
            _record_listing(A, B, reason="new")
            seal(db.session.connection())  # no test isolation here: nothing sealed it
            verdict = verify(db.session)
            assert verdict.valid and verdict.checked == 3, verdict
            assert _listed(3) == [A, B]
            db.session.rollback()
        finally:
            db.session.remove()
            db.engine.dispose()


# -- append only --------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET family_ids = '[]'",
    "UPDATE audit_listed_families SET family_id = family_id",
    "DELETE FROM audit_listed_families",
])
def test_the_database_refuses_to_change_what_an_event_lists(app, statement):
    with app.app_context():
        _record_listing(A, B, reason="guarded")
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                db.session.begin_nested():
            db.session.execute(sa.text(statement))
        [event] = audit_events(reason="guarded")
        assert event.family_ids == [str(A), str(B)] and _listed(event.seq) == [A, B]


def test_postgresql_refuses_to_truncate_the_listed_families(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("TRUNCATE is PostgreSQL's")
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                db.session.begin_nested():
            db.session.execute(sa.text("TRUNCATE audit_listed_families"))


# -- finding and showing ------------------------------------------------------------------

@pytest.fixture
def auditor(make):
    return make.token(make.organization(name="Network Privacy Office", type="community_other"),
                      ["audit:read"])


@pytest.fixture
def mixed(app, make):
    """Events naming A alone, A among others, A in both places, and not A at all."""
    org, other = make.organization(name="Reader"), make.organization(name="Other reader")
    with app.app_context():
        for n, (family_id, family_ids, by) in enumerate([
            (A, (), org), (None, (A, B), org), (B, (), org), (None, (B, C), other),
            (A, (A, C), other), (None, (C, A), org), (C, (), org),
        ]):
            audit.record(action="search" if family_ids else "read", outcome="permit",
                         reason="consent", resource_type="referral", purpose="referral",
                         family_id=family_id, family_ids=family_ids, organization_id=by.id,
                         client_id=f"mixed-{n}", categories=["identity"])
            db.session.commit()
    return org, other


def _walk(client, token, query) -> list:
    """Every event of a filtered list, page by page, as their client ids."""
    seen, cursor = [], None
    while True:
        answer = client.get(f"/api/v1/audit/events?{query}"
                            + (f"&cursor={cursor}" if cursor else ""), headers=bearer(token))
        assert answer.status_code == 200, answer.json
        seen += answer.json["items"]
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("limit", [1, 2, 50])
def test_the_family_filter_finds_events_listing_the_family_newest_first_once_each(
        client, auditor, mixed, limit):
    items = _walk(client, auditor, f"family_id={A}&limit={limit}")
    assert [e["actor"]["client_id"] for e in items] == ["mixed-5", "mixed-4", "mixed-1",
                                                        "mixed-0"]
    assert all(e["family_id"] == str(A) or str(A) in e["family_ids"] for e in items)


def test_the_family_filter_combines_with_the_others(client, auditor, mixed):
    org, other = mixed
    items = _walk(client, auditor, f"family_id={A}&organization_id={org.id}&limit=1")
    assert [e["actor"]["client_id"] for e in items] == ["mixed-5", "mixed-1", "mixed-0"]
    items = _walk(client, auditor, f"family_id={C}&action=search&limit=1")
    assert [e["actor"]["client_id"] for e in items] == ["mixed-5", "mixed-4", "mixed-3"]


def test_every_rendered_event_shows_family_ids_as_a_list(app, client, auditor, mixed):
    items = _walk(client, auditor, "limit=200")
    assert all(isinstance(e["family_ids"], list) for e in items)
    with app.app_context():
        seq = next(e.seq for e in audit_events() if e.client_id == "mixed-4")
    event = client.get(f"/api/v1/audit/events/{seq}", headers=bearer(auditor)).json
    assert event["family_id"] == str(A)
    assert event["family_ids"] == [str(A), str(C)]


def test_a_page_that_listed_the_family_is_in_its_accounting_of_disclosures(
        app, client, make, auditor):
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    family, neighbour = make.family(clinic), make.family(clinic, given_name="Bea")
    unlisted = make.family(clinic, given_name="Cy")
    consent = make.consent(family, [clinic, provider])
    with app.app_context():
        _record_listing(family.id, neighbour.id, organization_id=provider.id,
                        consent_ids=[consent.id], resource_id=None)
        # Neither a denial nor the custodian's own page is a disclosure.
        _record_listing(family.id, outcome="deny", reason="no_consent")
        _record_listing(family.id, reason="custodian", organization_id=clinic.id)
    own = make.token(clinic, ["families:read"])
    for listed in (family, neighbour):
        items = client.get(f"/api/v1/families/{listed.id}/disclosures",
                           headers=bearer(own)).json["items"]
        assert [(i["organization_id"], i["action"], i["consent_ids"]) for i in items] == [
            (str(provider.id), "search", [str(consent.id)])]
        # The accounting of one family names no other.
        assert "family_ids" not in items[0]
    items = client.get(f"/api/v1/families/{unlisted.id}/disclosures",
                       headers=bearer(auditor)).json["items"]
    assert items == []


def test_a_forged_cursor_with_the_family_filter_is_422(client, make, auditor):
    family = make.family(make.organization(name="Clinic", type="pediatric_primary_care"))
    for path in (f"/api/v1/audit/events?family_id={family.id}&cursor=forged",
                 f"/api/v1/families/{family.id}/disclosures?cursor=forged"):
        answer = client.get(path, headers=bearer(auditor))
        assert answer.status_code == 422, path
        assert "cursor" in answer.json["errors"]
