"""Numbers in paths, query strings and checkpoints are what the contract says: ASCII digits
within what the database holds. Python's int() reads more ("5_0", "+5", " 5", "٥", "３", a
number of any length), and werkzeug's `int` converter matches any script's digits: an
auditors' review found a 65-digit `seq` a 500 (its refusal's event too long to record) and
`limit=5_0` a page of 50."""

import base64

import pytest
import sqlalchemy as sa

import audit
from audit.checkpoints import key_id_of, signed_message
from audit.models import MAX_SEQ, AuditChainHead, AuditEvent
from core import time as clock
from core.db import db
from tests.conftest import assert_problem, assert_validation_error, bearer, count

NOT_WRITTEN_IN_ASCII_DIGITS = ["5_0", "+5", " 5", "5 ", "\u0665", "\uff13", "-5", "5.0", "0x5",
                               "", "1e1"]


@pytest.fixture
def events(app):
    with app.app_context():
        for _ in range(3):
            audit.record(action="read", outcome="permit", reason="review",
                         resource_type="audit_event")
        db.session.commit()
        return db.session.scalar(sa.select(AuditChainHead.seq))


@pytest.mark.parametrize("limit", NOT_WRITTEN_IN_ASCII_DIGITS)
@pytest.mark.parametrize("path", ["/api/v1/audit/events", "/api/v1/families",
                                  "/api/v1/organizations"])
def test_a_limit_not_written_in_ascii_digits_is_422(client, auditor, make, path, limit):
    token = auditor if "audit" in path else make.token()
    answer = client.get(path, query_string={"limit": limit}, headers=bearer(token))
    assert_validation_error(answer, "limit")


def test_a_limit_in_ascii_digits_is_read(client, auditor, events):
    answer = client.get("/api/v1/audit/events?limit=02", headers=bearer(auditor))
    assert answer.status_code == 200
    assert len(answer.json["items"]) == 2


@pytest.mark.parametrize("name", ["from_seq", "to_seq"])
@pytest.mark.parametrize("value", NOT_WRITTEN_IN_ASCII_DIGITS)
def test_a_verify_range_not_written_in_ascii_digits_is_422(client, auditor, events, name,
                                                            value):
    answer = client.get("/api/v1/audit/verify", query_string={name: value},
                        headers=bearer(auditor))
    assert_validation_error(answer, name)


def test_a_verify_range_in_ascii_digits_is_read(client, auditor, events):
    answer = client.get(f"/api/v1/audit/verify?from_seq=01&to_seq={events}",
                        headers=bearer(auditor))
    assert answer.status_code == 200
    assert answer.json["valid"] is True


@pytest.mark.parametrize("seq", ["9" * 65, "9" * 20, str(MAX_SEQ + 1), "\u0661", "\uff11",
                                 "+1", "1_0"])
def test_a_seq_that_is_no_bigint_in_ascii_digits_is_no_such_path(app, client, auditor, make,
                                                                events, seq):
    """No such path, for an auditor and for anyone else alike, and as any path the service
    does not have, no access to record: never a 500, nor a refusal the trail cannot hold."""
    tokens = (auditor, make.token(scopes=["families:read"]))
    with app.app_context():
        before = count(AuditEvent)
    for token in tokens:
        answer = client.get(f"/api/v1/audit/events/{seq}", headers=bearer(token))
        assert_problem(answer, 404, "not-found")
    with app.app_context():
        assert count(AuditEvent) == before


def test_the_largest_seq_is_an_audited_404_and_a_real_one_is_read(client, auditor, events):
    assert_problem(client.get(f"/api/v1/audit/events/{MAX_SEQ}", headers=bearer(auditor)),
                   404, "not-found")
    answer = client.get(f"/api/v1/audit/events/{events}", headers=bearer(auditor))
    assert answer.status_code == 200
    assert answer.json["seq"] == events


@pytest.mark.parametrize("seq", [MAX_SEQ + 1, 10**30])
def test_a_checkpoint_beyond_any_seq_is_422_even_signed_by_the_service(app, client, auditor,
                                                                       seq):
    """Only the service's key could sign it; still bad input, not a 500."""
    key = app.extensions["audit_signing_key"]
    public = key.public_key().public_bytes_raw()
    kept = {"seq": seq, "hash": "a" * 64, "recorded_at": clock.rfc3339(clock.now()),
            "key_id": key_id_of(public), "public_key": base64.b64encode(public).decode()}
    kept["signature"] = base64.b64encode(key.sign(signed_message(
        seq=seq, hash=kept["hash"], recorded_at=kept["recorded_at"],
        key_id=kept["key_id"]))).decode()
    answer = client.post("/api/v1/audit/checkpoints/verify", json=kept, headers=bearer(auditor))
    assert_validation_error(answer, "seq")
