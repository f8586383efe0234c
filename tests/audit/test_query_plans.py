"""The auditors' filters and time ranges read along an index at any depth of the log: a rare
`action` or `outcome` along its own; a range (`since`, `until`) along `seq` from near its
first (or last) event.

The PostgreSQL tests fill the log with 40,000 events (inside the test's rolled-back
transaction), analyze it, run the auditor's request, and EXPLAIN ANALYZE each statement the
request sent to audit_events: how many rows the database read and threw away to answer.
"""

import json
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

import audit
from audit.chain import exported_chain_break
from core import time as clock
from core.db import db
from tests.conftest import bearer, statements_sent

EVENTS = 40_000
#: The log spans 40,000 minutes from here: about 28 days.
START = "2026-10-01T00:00:00Z"


def _fill_log(app):
    """40,000 events, one a minute; every 1,000th an export, and every 1,000th from the
    500th an error. The chain head moves past them so that later events follow."""
    with app.app_context():
        db.session.execute(sa.text("""
            INSERT INTO audit_events (seq, id, recorded_at, action, outcome, reason,
                organization_id, client_id, token_id, purpose, resource_type, resource_id,
                family_id, categories, consent_ids, request_id, request_method, request_path,
                request_ip, prev_hash, hash, family_ids)
            SELECT h.seq + g, gen_random_uuid(),
                   CAST(:start AS timestamptz) + g * interval '1 minute',
                   CASE WHEN g % 1000 = 0 THEN 'export' ELSE 'read' END,
                   CASE WHEN g % 1000 = 500 THEN 'error' ELSE 'permit' END, 'custodian',
                   gen_random_uuid(), 'client-' || (g % 40), NULL, NULL, 'family', NULL,
                   gen_random_uuid(), '["identity"]', '[]', NULL, 'GET', '/api/v1/families/x',
                   '203.0.113.9', repeat('0', 64), repeat('1', 64), '[]'
            FROM audit_chain_head h, generate_series(1, :n) g WHERE h.id = 1"""),
            {"start": START, "n": EVENTS})
        db.session.execute(sa.text(
            "UPDATE audit_chain_head SET seq = (SELECT max(seq) FROM audit_events) WHERE id = 1"))
        db.session.execute(sa.text("ANALYZE audit_events"))
        db.session.commit()


@contextmanager
def _statements_on_audit_events(app):
    """The reads of audit_events the block sends (sealing and counts left out)."""
    with statements_sent(app) as sent:
        reads = []
        yield reads
    reads += [(statement, parameters) for statement, parameters in sent
              if statement.lstrip().upper().startswith("SELECT")
              and "FROM audit_events" in statement
              and "audit_seal_pending" not in statement and "count(" not in statement]


def _rows_thrown_away(app, statements) -> int:
    """Rows the plans of these statements read and discarded (filters, joins), in all."""
    def removed(node):
        return (node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1)
                + sum(removed(child) for child in node.get("Plans", ())))

    total = 0
    with app.app_context():
        for statement, parameters in statements:
            [[plan]] = db.session.connection().exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).one()
            total += removed(plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"])
    return total


@pytest.fixture
def auditor(app, make):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("query plans are PostgreSQL's")
    # Listed before the log begins, as an auditor's office is: its operator events come
    # first in time as in seq, and leave the log's time order as _fill_log keeps it.
    clock.freeze(datetime.fromisoformat(START) - timedelta(days=1))
    try:
        office = make.organization(name="State Audit Office", type="community_other")
        return bearer(make.token(office, lifetime=90 * 86400))
    finally:
        clock.freeze(None)


@pytest.mark.parametrize("query", ["action=export", "outcome=error",
                                   "outcome=error&action=read"])
def test_a_page_of_a_rare_value_reads_along_its_index(app, client, auditor, query):
    """A page of `?action=export` or `?outcome=error` (40 of each in 40,000 events) walks
    (action, seq) or (outcome, seq) newest first, as every auditor's filter does, and reads
    no event of another value (the outcome's page scanned the whole log, 170 ms and more at a
    million events: a review)."""
    _fill_log(app)
    with _statements_on_audit_events(app) as sent:
        response = client.get(f"/api/v1/audit/events?{query}&limit=50", headers=auditor)
        assert response.status_code == 200
        assert len(response.json["items"]) == 40
    assert _rows_thrown_away(app, sent) <= 5_000


def test_an_export_of_the_newest_days_does_not_read_the_whole_older_log(app, client, auditor):
    """Its first batch starts near the range's first event (the export's keyset used to start
    at event 1 and discard every older event: 174,000 rows on a 200,000-event log, and a
    statement timeout after the 200 was sent would cut the auditor's NDJSON short)."""
    _fill_log(app)
    # The newest 7,681 minutes of the log: about 5.3 days, 8 batches.
    with _statements_on_audit_events(app) as sent:
        response = client.get("/api/v1/audit/export?since=2026-10-23T10:40:00Z"
                              "&until=2026-10-29T00:00:00Z", headers=auditor)
        assert response.status_code == 200
        assert response.get_data().count(b"\n") == 7_681
    batches = [s for s in sent if "audit_events.hash" in s[0]]  # whole events, in seq order
    assert len(batches) == 8
    assert _rows_thrown_away(app, sent) <= 2_000


@pytest.mark.parametrize("query", [
    "until=2026-10-02T00:00:00Z",                               # the oldest day of the log
    "since=2026-10-05T00:00:00Z&until=2026-10-06T00:00:00Z",    # a day deep in it
])
def test_a_page_of_a_past_time_range_does_not_scan_the_log(app, client, auditor, query):
    """A page of 50, newest first, of a range long past reads near that range, not every
    event after it (39,000 of 40,000 rows thrown away here before, growing with the log)."""
    _fill_log(app)
    with _statements_on_audit_events(app) as sent:
        response = client.get(f"/api/v1/audit/events?{query}&limit=50", headers=auditor)
        assert response.status_code == 200
        assert len(response.json["items"]) == 50
    assert _rows_thrown_away(app, sent) <= 5_000


def test_events_recorded_out_of_seq_order_near_a_ranges_ends_are_found(app, client, make):
    """`seq` is commit order: a request that records an event and commits twenty seconds
    later comes after one that recorded after it and committed at once. Events so ordered
    near `since` and `until` are listed all the same, and exported with what was chained
    between them, on both databases."""
    auditor = bearer(make.token(make.organization(name="State Audit Office",
                                                  type="community_other"), ["audit:read"]))
    at = clock.now() - timedelta(days=2)
    # In seq order: recorded 30 s after `since`, 10 s before it, 10 s after `until`, 20 s
    # before it; and two hours before and after the range, which bound its reading.
    recorded = [at - timedelta(hours=2), at + timedelta(seconds=30), at - timedelta(seconds=10),
                at + timedelta(hours=1, seconds=10), at + timedelta(minutes=59, seconds=40),
                at + timedelta(hours=3)]
    seqs = []
    with app.app_context():
        for instant in recorded:
            clock.freeze(instant)
            audit.record(action="read", outcome="permit", reason="test",
                         resource_type="family", categories=["identity"], purpose="referral")
            db.session.commit()
            seqs.append(db.session.scalar(sa.text("SELECT max(seq) FROM audit_events")))
        clock.freeze(None)
    assert seqs == sorted(seqs)
    since, until = (t.isoformat().replace("+00:00", "Z") for t in (at, at + timedelta(hours=1)))
    in_range = {seqs[1], seqs[4]}
    exported = client.get(f"/api/v1/audit/export?since={since}&until={until}",
                          headers=auditor)
    assert exported.status_code == 200
    # The export is the chain's stretch from the first event recorded in the range to the
    # last: the two chained between them, recorded just outside it, too (no gap to check).
    lines = [json.loads(line) for line in exported.get_data().splitlines()]
    assert [line["seq"] for line in lines] == seqs[1:5]
    assert exported_chain_break(lines) is None
    listed = client.get(f"/api/v1/audit/events?since={since}&until={until}",
                        headers=auditor).json["items"]
    assert {e["seq"] for e in listed} == in_range
