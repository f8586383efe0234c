"""The auditors' queries: filters, keyset pages newest first, one event, NDJSON export."""

import itertools
import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

import audit
from audit.chain import exported_chain_break, exported_event_hash
from core import time as clock
from core.db import db
from tests.conftest import audit_events, bearer

FAMILY = uuid.UUID("11111111-1111-4111-8111-111111111111")


@pytest.fixture
def auditor(make):
    return make.token(make.organization(name="Network Privacy Office", type="community_other"),
                      ["audit:read"])


@pytest.fixture
def seeded(app, make):
    """Events from two organizations, some about FAMILY, spread over three days."""
    a, b = make.organization(name="A"), make.organization(name="B")
    start = clock.now() - timedelta(days=3)
    with app.app_context():
        for n in range(12):
            clock.freeze(start + timedelta(hours=6 * n))
            audit.record(action="read" if n % 3 else "update",
                         outcome="deny" if n % 4 == 0 else "permit", reason="test",
                         resource_type="family", resource_id=FAMILY if n % 2 else None,
                         family_id=FAMILY if n % 2 else None,
                         organization_id=(a if n < 6 else b).id, client_id=f"client-{n % 2}",
                         categories=["identity"], purpose="referral")
            db.session.commit()
        clock.freeze(None)
    return a, b, start


def _page(client, token, query=""):
    response = client.get(f"/api/v1/audit/events?{query}", headers=bearer(token))
    assert response.status_code == 200, response.json
    return response.json


def test_filters_combine_and_pages_walk_newest_first(client, auditor, seeded):
    a, _, _ = seeded
    seqs, cursor = [], None
    while True:
        query = f"organization_id={a.id}&family_id={FAMILY}&limit=2"
        page = _page(client, auditor, query + (f"&cursor={cursor}" if cursor else ""))
        seqs += [e["seq"] for e in page["items"]]
        assert all(e["actor"]["organization_id"] == str(a.id) for e in page["items"])
        assert all(e["family_id"] == str(FAMILY) for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seqs) == 3 and seqs == sorted(seqs, reverse=True)


@pytest.mark.parametrize("query,expected", [
    ("action=update", 4), ("outcome=deny", 3), ("client_id=client-1", 6),
    ("resource_type=family&resource_id=" + str(FAMILY), 6), ("action=update&outcome=deny", 1),
])
def test_each_filter(client, auditor, seeded, query, expected):
    items = _page(client, auditor, query + "&limit=200")["items"]
    assert len([e for e in items if e["reason"] == "test"]) == expected


def test_the_resource_id_filter_finds_a_uuid_written_in_capitals(app, client, auditor):
    """UUIDs are case-insensitive on input (RFC 9562 4), as the other id filters take them:
    the events on an object are found however its id is cased."""
    referral = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12")
    with app.app_context():
        for action in ("create", "read"):
            audit.record(action=action, outcome="permit", reason="test",
                         resource_type="referral", resource_id=referral)
        db.session.commit()

    as_issued = _page(client, auditor, f"resource_id={referral}")["items"]
    capitals = _page(client, auditor, f"resource_id={str(referral).upper()}")["items"]

    assert [e["action"] for e in as_issued] == ["read", "create"]
    assert [e["seq"] for e in capitals] == [e["seq"] for e in as_issued]


def test_the_resource_id_filter_takes_an_events_seq_as_it_is(client, auditor, seeded):
    """An id that is not a UUID (the seq of an audit event read) is matched as given."""
    seq = _page(client, auditor, "limit=1")["items"][0]["seq"]
    assert client.get(f"/api/v1/audit/events/{seq}", headers=bearer(auditor)).status_code == 200

    items = _page(client, auditor, f"resource_type=audit_event&resource_id={seq}")["items"]

    assert [(e["action"], e["resource"]["id"]) for e in items] == [("read", str(seq))]


def test_time_range(client, auditor, seeded):
    _, _, start = seeded
    since = (start + timedelta(hours=12)).isoformat()
    until = (start + timedelta(hours=30)).isoformat()
    items = _page(client, auditor, f"since={since}&until={until}".replace("+", "%2B"))["items"]
    assert [e["reason"] for e in items] == ["test"] * 3


def test_an_event_reads_back_in_the_contract_shape(app, client, auditor, seeded):
    with app.app_context():
        seq = audit_events(reason="test")[1].seq
    answer = client.get(f"/api/v1/audit/events/{seq}", headers=bearer(auditor))
    assert answer.status_code == 200
    event = answer.json
    assert list(event) == ["seq", "id", "recorded_at", "action", "outcome", "reason", "actor",
                           "purpose", "resource", "family_id", "family_ids", "categories",
                           "consent_ids", "request", "prev_hash", "hash"]
    assert event["family_ids"] == []
    assert event["resource"] == {"type": "family", "id": str(FAMILY)}
    assert set(event["actor"]) == {"organization_id", "client_id", "token_id"}
    assert event["recorded_at"].endswith("Z")


def test_reads_of_the_trail_are_recorded(app, client, auditor, seeded):
    _page(client, auditor, "limit=1")
    with app.app_context():
        assert [e.action for e in audit_events(resource_type="audit_event")] == ["search"]


@pytest.mark.parametrize("query,field", [
    ("action=delete", "action"), ("outcome=maybe", "outcome"), ("family_id=nope", "family_id"),
    ("organization_id=1", "organization_id"), ("limit=0", "limit"), ("limit=201", "limit"),
    ("cursor=forged", "cursor"), ("since=yesterday", "since"),
    ("since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "until"),
    ("since=2026-11-01T00:00:00", "since"), ("colour=red", "colour"),
])
def test_bad_filters_are_422(client, auditor, query, field):
    answer = client.get(f"/api/v1/audit/events?{query}", headers=bearer(auditor))
    assert answer.status_code == 422
    assert field in answer.json["errors"]


def test_a_cursor_of_another_list_is_refused(client, make, auditor):
    for n in range(3):
        make.organization(name=f"Org {n}")
    directory = make.token(make.organization(), ["directory:read"])
    cursor = client.get("/api/v1/organizations?limit=1",
                        headers=bearer(directory)).json["next_cursor"]
    answer = client.get(f"/api/v1/audit/events?cursor={cursor}", headers=bearer(auditor))
    assert answer.status_code == 422


@pytest.mark.parametrize("seq", ["999999999", "0"])
def test_an_event_out_of_range_is_404(client, auditor, seq):
    answer = client.get(f"/api/v1/audit/events/{seq}", headers=bearer(auditor))
    assert answer.status_code == 404
    assert answer.json["type"] == "/problems/not-found"


@pytest.mark.parametrize("path", ["/api/v1/audit/events", "/api/v1/audit/verify",
                                  "/api/v1/audit/checkpoints/latest",
                                  "/api/v1/audit/export?since=2026-01-01T00:00:00Z"
                                  "&until=2026-01-02T00:00:00Z"])
def test_without_audit_read_the_trail_is_closed(client, make, path):
    token = make.token(make.organization(), ["directory:read", "families:read"])
    answer = client.get(path, headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json["type"] == "/problems/insufficient-scope"


def test_export_streams_ndjson_oldest_first(app, client, auditor, seeded):
    _, _, start = seeded
    since = start.isoformat().replace("+00:00", "Z")
    until = (start + timedelta(days=4)).isoformat().replace("+00:00", "Z")
    answer = client.get(f"/api/v1/audit/export?since={since}&until={until}",
                        headers=bearer(auditor))
    assert answer.status_code == 200
    assert answer.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]
    tests = [e for e in lines if e["reason"] == "test"]
    assert len(tests) == 12
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines)
    with app.app_context():
        assert [e.action for e in audit_events(resource_type="audit_event")] == ["export"]
    # Verified away from the service, as the README shows: each line hashes to its `hash`,
    # and links to the line before it.
    assert [exported_event_hash(e) for e in lines] == [e["hash"] for e in lines]
    assert all(later["prev_hash"] == earlier["hash"]
               for earlier, later in itertools.pairwise(lines)
               if later["seq"] == earlier["seq"] + 1)
    tampered = {**lines[0], "request": {**lines[0]["request"], "ip": "10.9.9.9"}}
    assert exported_event_hash(tampered) != lines[0]["hash"]


#: The README's command that checks an export away from the service.
_CHECK_EXPORT = ("import json, sys; from audit.chain import exported_chain_break as b; "
                 "print(b(map(json.loads, open(sys.argv[1]))))")


def test_an_export_is_checked_away_from_the_service(app, client, auditor, tmp_path):
    """Every line hashes, follows the one before by one seq and chains to it: a line changed,
    dropped, moved, repeated, or changed and re-hashed is named (found by a review: the
    README's command checked each line's hash alone, and passed an export cut in the middle).
    The export has no gap to allow for (see the test of events recorded out of seq order)."""
    with app.app_context():
        for n in range(6):
            audit.record(action="read", outcome="permit", reason=f"line-{n}",
                         resource_type="audit_event")
            db.session.commit()
    at = clock.now()
    since, until = (f"{(at + timedelta(hours=h)).isoformat().replace('+00:00', 'Z')}"
                    for h in (-1, 1))
    answer = client.get(f"/api/v1/audit/export?since={since}&until={until}",
                        headers=bearer(auditor))
    export = tmp_path / "trail.ndjson"
    export.write_text(answer.get_data(as_text=True))
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) >= 6

    assert exported_chain_break(lines) is None
    checked = subprocess.run(  # noqa: S603 (our own interpreter and the README's command)
        [sys.executable, "-c", _CHECK_EXPORT, str(export)], capture_output=True, text=True,
        check=True)
    assert checked.stdout.strip() == "None"

    seqs = [line["seq"] for line in lines]
    changed = {**lines[2], "reason": "edited"}
    rehashed = {**changed, "hash": exported_event_hash(changed)}
    broken = {
        "a line changed": (lines[:2] + [changed] + lines[3:], seqs[2], "does not hash"),
        "a line dropped": (lines[:3] + lines[4:], seqs[3], f"is event {seqs[4]}, not"),
        "two lines swapped": (lines[:3] + [lines[4], lines[3]] + lines[5:], seqs[3],
                              f"is event {seqs[4]}, not"),
        "a line repeated": (lines[:4] + [lines[3]] + lines[4:], seqs[4],
                            f"is event {seqs[3]}, not"),
        "a line that is not an event": (lines[:3] + [{"seq": seqs[3]}] + lines[4:], seqs[3],
                                        "line 4 is not an exported event"),
        "a line without its hash": (lines[:3] + [{k: v for k, v in lines[3].items()
                                                  if k != "hash"}] + lines[4:], seqs[3],
                                    "line 4 is not an exported event"),
        "a line changed and re-hashed": (lines[:2] + [rehashed] + lines[3:], seqs[3],
                                         "does not chain"),
    }
    for name, (mutated, seq, why) in broken.items():
        found = exported_chain_break(mutated)
        assert found is not None and found[0] == seq and why in found[1], (name, found)
    export.write_text("".join(json.dumps(line) + "\n" for line in broken["a line dropped"][0]))
    checked = subprocess.run(  # noqa: S603 (our own interpreter and the README's command)
        [sys.executable, "-c", _CHECK_EXPORT, str(export)], capture_output=True, text=True,
        check=True)
    assert checked.stdout.strip() != "None"


@pytest.mark.parametrize("query", [
    "since=2026-01-01T00:00:00Z",
    "until=2026-01-01T00:00:00Z",
    "since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:01Z",
    "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
])
def test_export_needs_a_range_of_at_most_31_days(client, auditor, query):
    answer = client.get(f"/api/v1/audit/export?{query}", headers=bearer(auditor))
    assert answer.status_code == 422


@pytest.mark.parametrize("path,status", [
    ("/api/v1/audit/verify?from_seq=99999999", 422),
    ("/api/v1/audit/verify?from_seq=99999999999999999999999", 422),
    ("/api/v1/audit/verify?to_seq=99999999999999999999999", 422),
    ("/api/v1/audit/events/99999999999999999999999", 404),
])
def test_seq_beyond_the_log_or_a_bigint_is_a_clear_4xx(client, auditor, seeded, path, status):
    answer = client.get(path, headers=bearer(auditor))
    assert answer.status_code == status, answer.get_data(as_text=True)


@pytest.mark.parametrize("finer,since_lets_in,until_lets_in", [
    ("000", True, False),  # the very microsecond, written with nanoseconds: as without them
    ("001", False, True),  # a nanosecond after the event: since passes it by, until holds it
    ("999", False, True),
])
def test_a_bound_finer_than_a_microsecond_lets_in_what_its_exact_value_does(
        client, auditor, seeded, finer, since_lets_in, until_lets_in):
    """Times are kept to the microsecond; RFC 3339 allows any fraction. A bound a nanosecond
    past an event's time must not be cut down onto it (`since` inclusive, `until`
    exclusive), in the list and in the export."""
    _, _, start = seeded
    at = start + timedelta(hours=6)  # the second event's time
    with_nanos = at.strftime("%Y-%m-%dT%H:%M:%S.%f") + finer + "Z"
    wide_before = (at - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    wide_after = (at + timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    def times(path, since, until):
        answer = client.get(f"/api/v1/audit/{path}?since={since}&until={until}",
                            headers=bearer(auditor))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        if path == "export":
            found = [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]
        else:
            found = answer.json["items"]
        return [e["recorded_at"] for e in found if e["reason"] == "test"]

    event_time = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for path in ("events", "export"):
        assert (event_time in times(path, with_nanos, wide_after)) is since_lets_in
        assert (event_time in times(path, wide_before, with_nanos)) is until_lets_in


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59.9999999Z",
                                   "9999-12-31T23:59:59.9999999-23:59"])
def test_a_finer_instant_at_the_end_of_time_is_422_not_500(client, auditor, value):
    """Read as the next microsecond, it lies past the last one Python holds (found by a
    review of the change)."""
    response = client.get(f"/api/v1/audit/events?since={value}", headers=bearer(auditor))
    assert response.status_code == 422, response.get_data(as_text=True)


def test_the_client_id_filter_finds_a_client_written_in_capitals(app, client, auditor, make):
    """A client's id is a UUID too: an auditor pasting it in capitals finds its events."""
    oauth_client, _ = make.client()
    token = make.token(oauth_client=oauth_client)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    client.get(f"/api/v1/families/{uuid.uuid4()}", headers=bearer(token))  # a refusal: on it

    as_issued = _page(client, auditor, f"client_id={oauth_client.id}")["items"]
    capitals = _page(client, auditor, f"client_id={str(oauth_client.id).upper()}")["items"]

    assert as_issued and {e["actor"]["client_id"] for e in as_issued} == {str(oauth_client.id)}
    assert [e["seq"] for e in capitals] == [e["seq"] for e in as_issued]
