"""`since`/`until` on GET /api/v1/audit/events and GET /api/v1/audit/export select by
`recorded_at` ("Events recorded in [since, until)"), whatever `seq` the event got.

`recorded_at` is the recording host's clock, and the events are chained in commit order:
one host whose clock is off by hours (a clock stepped back by NTP, a VM restored) records an
event far from its neighbours in time. The time filters narrow their scan along `seq` by as
much as the chain head says times have strayed, so no event in the range is left out (an
auditors' review found them left out when the stray passed an hour).
"""

import json
from datetime import timedelta

import flask_migrate
import pytest

import audit
from audit.models import AuditChainHead
from audit.sealer import seal_committed
from core import time as clock
from core.db import db
from tests.conftest import bearer, make_app


def _record(app, reason, at=None):
    with app.app_context():
        clock.freeze(at)
        try:
            audit.record(action="read", outcome="permit", reason=reason,
                         resource_type="family")
            db.session.commit()
        finally:
            clock.freeze(None)


def _z(instant):
    return instant.isoformat().replace("+00:00", "Z")


def _found(client, auditor, since, until):
    listed = client.get(f"/api/v1/audit/events?since={_z(since)}&until={_z(until)}&limit=200",
                        headers=bearer(auditor))
    assert listed.status_code == 200
    exported = client.get(f"/api/v1/audit/export?since={_z(since)}&until={_z(until)}",
                          headers=bearer(auditor))
    assert exported.status_code == 200
    return ({e["reason"] for e in listed.json["items"]},
            {json.loads(line)["reason"] for line in exported.get_data(as_text=True).splitlines()})


@pytest.mark.parametrize("where", ["events", "export"])
def test_a_later_event_stamped_by_a_slow_clock_does_not_hide_the_range(app, client, auditor,
                                                                       where):
    now = clock.now()
    _record(app, "in-range")                                   # recorded now, seq n
    _record(app, "slow-clock", at=now - timedelta(hours=3))    # seq n + 1, stamped 3 h back
    listed, exported = _found(client, auditor, now - timedelta(minutes=30),
                              now + timedelta(minutes=30))
    assert "in-range" in (listed if where == "events" else exported)


@pytest.mark.parametrize("where", ["events", "export"])
def test_an_earlier_event_stamped_by_a_fast_clock_does_not_hide_the_range(app, client,
                                                                          auditor, where):
    now = clock.now()
    _record(app, "fast-clock", at=now + timedelta(hours=3))    # seq n, stamped 3 h ahead
    _record(app, "in-range")                                   # recorded now, seq n + 1
    listed, exported = _found(client, auditor, now - timedelta(minutes=30),
                              now + timedelta(minutes=30))
    assert "in-range" in (listed if where == "events" else exported)


@pytest.mark.no_db
def test_the_head_keeps_how_far_times_stray_from_chain_order_and_the_upgrade_backfills_it(
        empty_database):
    """Chained live (SQLite's recorder, PostgreSQL's sealer) and recomputed from the log by
    the upgrade to 0013: the most an event's time fell before an earlier-chained one's."""
    application = make_app(empty_database)
    with application.app_context():
        try:
            flask_migrate.upgrade()
            now = clock.now()
            for at in (now, now - timedelta(hours=3), now + timedelta(minutes=5),
                       now - timedelta(hours=1)):
                clock.freeze(at)
                audit.record(action="read", outcome="permit", reason="probe",
                             resource_type="family")
                db.session.commit()
                seal_committed()
            clock.freeze(None)
            expected = (now - (now - timedelta(hours=3))) // timedelta(microseconds=1)
            assert _time_order() == (now + timedelta(minutes=5), expected)
            db.session.remove()  # the migration's connection is the one writer (SQLite)
            flask_migrate.downgrade(revision="0012")
            flask_migrate.upgrade()
            assert _time_order() == (now + timedelta(minutes=5), expected)
        finally:
            clock.freeze(None)
            db.session.rollback()
            db.engine.dispose()


def _time_order():
    head = db.session.get(AuditChainHead, 1, populate_existing=True)
    db.session.rollback()
    return head.newest_recorded_at, head.time_disorder_us
