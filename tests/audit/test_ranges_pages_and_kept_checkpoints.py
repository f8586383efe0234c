"""What an auditor relies on and an auditors' review checked: pages that neither skip nor
repeat while events arrive, empty and exact time ranges, a kept checkpoint past a rewound
head, ranges that start mid-log."""

import json
from datetime import timedelta, timezone

import pytest
import sqlalchemy as sa

import audit
from audit.models import AuditChainHead, AuditEvent
from core import time as clock
from core.db import db
from tests.audit.conftest import unlock
from tests.conftest import bearer


def _record(app, n=1, reason="held"):
    with app.app_context():
        for _ in range(n):
            audit.record(action="read", outcome="permit", reason=reason, resource_type="family")
            db.session.commit()
        return db.session.scalar(sa.select(AuditChainHead.seq))


def test_pages_neither_skip_nor_repeat_while_events_arrive(app, client, auditor):
    _record(app, 7)
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/audit/events?limit=2" + (f"&cursor={cursor}" if cursor
                                                            else ""), headers=bearer(auditor))
        seen += [e["seq"] for e in page.json["items"]]
        _record(app)  # a new event between every two pages
        cursor = page.json["next_cursor"]
        if not cursor:
            break
    assert seen == list(range(seen[0], 0, -1))


def test_an_export_of_an_empty_range_is_200_and_empty(client, auditor):
    answer = client.get("/api/v1/audit/export?since=2001-01-01T00:00:00Z"
                        "&until=2001-02-01T00:00:00Z", headers=bearer(auditor))
    assert answer.status_code == 200
    assert answer.mimetype == "application/x-ndjson"
    assert answer.get_data() == b""


def test_since_is_inclusive_until_exclusive_in_any_offset(app, client, auditor):
    at = clock.now().replace(microsecond=0) - timedelta(days=3)
    with app.app_context():
        for instant in (at - timedelta(microseconds=1), at,
                        at + timedelta(hours=1, microseconds=-1), at + timedelta(hours=1)):
            clock.freeze(instant)
            audit.record(action="read", outcome="permit", reason="edge", resource_type="family")
            db.session.commit()
        clock.freeze(None)
    since = at.astimezone(timezone(timedelta(hours=5))).isoformat().replace("+", "%2B")
    until = (at + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-7))).isoformat()
    listed = client.get(f"/api/v1/audit/events?since={since}&until={until}",
                        headers=bearer(auditor)).json["items"]
    exported = client.get(f"/api/v1/audit/export?since={since}&until={until}",
                          headers=bearer(auditor)).get_data(as_text=True).splitlines()
    expected = [clock.rfc3339(at), clock.rfc3339(at + timedelta(hours=1, microseconds=-1))]
    assert [e["recorded_at"] for e in listed if e["reason"] == "edge"] == expected[::-1]
    assert [json.loads(line)["recorded_at"] for line in exported] == expected


def test_a_kept_checkpoint_beyond_a_cut_and_rewound_head_is_reported_invalid(app, client,
                                                                             auditor):
    _record(app, 4)
    kept = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    with app.app_context():
        unlock("audit_events")
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq >= kept["seq"] - 1))
        last = db.session.get(AuditEvent, kept["seq"] - 2)
        db.session.execute(sa.update(AuditChainHead).values(seq=last.seq, hash=last.hash))
        db.session.commit()
    # The chain alone holds (cut and rewound); the checkpoint the service stored does not.
    verdict = client.get("/api/v1/audit/verify", headers=bearer(auditor)).json
    assert (verdict["valid"], verdict["first_bad_seq"]) == (False, kept["seq"]), verdict
    answer = client.post("/api/v1/audit/checkpoints/verify", json=kept, headers=bearer(auditor))
    assert answer.status_code == 200
    assert answer.json == {"valid": False,
                           "reason": f"the log no longer holds event {kept['seq']}"}


@pytest.mark.parametrize("span", [(2, 2), (3, None), (2, 4)])
def test_ranges_starting_mid_log_verify_on_an_untouched_log(app, client, auditor, span):
    head = _record(app, 5)
    low, high = span
    query = f"from_seq={low}" + (f"&to_seq={high}" if high else "")
    answer = client.get(f"/api/v1/audit/verify?{query}", headers=bearer(auditor)).json
    assert answer["valid"] is True
    assert answer["checked"] == (high or head) - low + 1
    result = app.test_cli_runner().invoke(
        args=["audit", "verify", "--from-seq", str(low)]
        + (["--to-seq", str(high)] if high else []))
    assert result.exit_code == 0, result.output
