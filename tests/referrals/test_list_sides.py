"""A list without `direction` walks the caller's sent and received referrals as one order."""

from datetime import UTC, datetime, timedelta

import pytest

from core import time as clock
from core.db import db
from tests.conftest import bearer, statements_sent
from tests.referrals.conftest import FULL, LONG


@pytest.fixture
def both_ways(client, make):
    """A home visiting program that refers its own families to a provider and receives a
    clinic's referrals, several of each at one instant (ties broken by id)."""
    home = make.organization(name="Home Visiting", type="home_visiting",
                             accepting_referrals=True)
    provider = make.organization(name="Provider", accepting_referrals=True)
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    as_home, as_clinic = (bearer(make.token(o, lifetime=LONG)) for o in (home, clinic))
    sent, received = [], []
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    for n in range(4):
        # Two referrals each way at every instant, and instants where only one side moved.
        clock.freeze(start + timedelta(minutes=n // 2 if n < 2 else n))
        own = make.family(home, given_name=f"Own{n}")
        make.consent(own, [home, provider], categories=FULL)
        theirs = make.family(clinic, given_name=f"Theirs{n}")
        make.consent(theirs, [clinic, home], categories=FULL)
        sent.append(send_to(client, own, provider, as_home))
        received.append(send_to(client, theirs, home, as_clinic))
    clock.freeze(start + timedelta(minutes=10))
    return home, as_home, sent, received


def send_to(client, family, receiver, headers) -> dict:
    answer = client.post("/api/v1/referrals", headers=headers, json={
        "family_id": str(family.id), "to_organization_id": str(receiver.id),
        "reasons": ["feeding_concerns"], "urgency": "routine",
        "shared_categories": ["identity"]})
    assert answer.status_code == 201, answer.json
    return answer.json


def pages(client, headers, query: str, limit: int) -> list[dict]:
    items, cursor = [], None
    while True:
        url = f"/api/v1/referrals?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200, answer.json
        items += answer.json["items"]
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("limit", [1, 2, 3, 8, 200])
def test_pages_without_direction_merge_both_sides_newest_first_without_gaps_or_repeats(
        client, both_ways, limit):
    home, as_home, sent, received = both_ways
    items = pages(client, as_home, "", limit)
    expected = sorted(sent + received, key=lambda r: (r["updated_at"], r["id"]), reverse=True)
    assert [r["id"] for r in items] == [r["id"] for r in expected]
    # Each side, asked alone, is that side's part of the same order.
    for direction, side in (("sent", sent), ("received", received)):
        alone = pages(client, as_home, f"&direction={direction}", limit)
        assert [r["id"] for r in alone] == [r["id"] for r in expected if r in side]


def test_filters_hold_on_both_sides_of_a_merged_page(client, both_ways):
    home, as_home, sent, received = both_ways
    since = sorted(r["updated_at"] for r in sent + received)[4]
    items = pages(client, as_home, f"&updated_since={since}&status=requested", 2)
    assert {r["id"] for r in items} == {r["id"] for r in sent + received
                                        if r["updated_at"] >= since}
    assert {r["from_organization_id"] for r in items} > {str(home.id)}  # both sides in it


def test_a_page_without_direction_reads_each_side_along_its_index(app, client, both_ways):
    """The first page of an organization with years of referrals reads 2 x (limit + 1) rows
    along the two sides' indexes, not every referral it ever sent or received sorted (one OR
    of both sides made PostgreSQL scan and sort them all: 300 ms at 400,000)."""
    home, as_home, *_ = both_ways
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan asked of is PostgreSQL's")
    with statements_sent(app) as sent:
        assert client.get("/api/v1/referrals?limit=5", headers=as_home).status_code == 200
    statement, parameters = next((s, p) for s, p in sent
                                 if "FROM referrals" in s and "ORDER BY" in s)
    with app.app_context():
        connection = db.session.connection()
        # As on a large table, where a sequential scan would never win.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in connection.exec_driver_sql(
            "EXPLAIN " + statement, parameters))
        db.session.rollback()
    assert plan.count("Index Scan Backward using ix_referrals_from_updated") == 1, plan
    assert plan.count("Index Scan Backward using ix_referrals_to_updated") == 1, plan
    # The only sort is of the two sides' first rows, above their limits.
    assert plan.count("Sort") <= 1 and plan.index("Sort") < plan.index("Index Scan"), plan
