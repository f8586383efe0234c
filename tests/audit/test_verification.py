"""Verification and checkpoints catch every rewrite of history: the mutation corpus."""

import base64
import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit
from audit.chain import event_hash, verify
from audit.checkpoints import (
    SigningKeyError,
    checkpoint_now,
    extends,
    key_id_of,
    load_previous_public_keys,
    signed_message,
)
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.schemas import CheckpointSchema
from core import time as clock
from core.db import db
from tests.audit.conftest import rewrite_and_rehash, unlock
from tests.conftest import bearer

EVENTS = 6


#: The families the third event of the trail lists.
LISTED = [uuid.UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"),
          uuid.UUID("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")]


@pytest.fixture
def trail(app):
    """Six committed events, the third listing two families; yields their seqs."""
    with app.app_context():
        first = db.session.scalar(sa.select(AuditChainHead.seq)) + 1
        for n in range(EVENTS):
            audit.record(action="search" if n == 2 else "read", outcome="permit",
                         reason=f"event-{n}", resource_type="audit_event",
                         family_ids=LISTED if n == 2 else ())
            db.session.commit()
    return list(range(first, first + EVENTS))


def _unlock():
    unlock("audit_events")


def _swap(a, b):
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == a).values(seq=10**15))
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == b).values(seq=a))
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 10**15).values(seq=b))


def _forge_after_head(head_seq):
    last = db.session.get(AuditEvent, head_seq)
    values = {c.key: getattr(last, c.key) for c in AuditEvent.__table__.columns}
    values.update(seq=head_seq + 1, id=uuid.uuid4(), reason="forged",
                  prev_hash=last.hash)
    values["hash"] = event_hash(values)
    db.session.execute(sa.insert(AuditEvent).values(**values))


MUTATIONS = {
    "changed field": (lambda s: db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.seq == s[2]).values(reason="edited")),
        lambda s: s[2], "does not hash"),
    "family dropped from family_ids": (lambda s: db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.seq == s[2]).values(family_ids=[str(LISTED[0])])),
        lambda s: s[2], "does not hash"),
    "family_ids emptied": (lambda s: db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.seq == s[2]).values(family_ids=[])),
        lambda s: s[2], "does not hash"),
    "family added to family_ids": (lambda s: db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.seq == s[3]).values(family_ids=[str(LISTED[1])])),
        lambda s: s[3], "does not hash"),
    "deleted row": (lambda s: db.session.execute(
        sa.delete(AuditEvent).where(AuditEvent.seq == s[2])), lambda s: s[2], "missing"),
    "two rows swapped": (lambda s: _swap(s[1], s[2]), lambda s: s[1], "prev_hash"),
    "inserted row": (lambda s: _forge_after_head(s[-1]), lambda s: s[-1] + 1,
                     "beyond the chain head"),
    "truncated tail": (lambda s: db.session.execute(
        sa.delete(AuditEvent).where(AuditEvent.seq >= s[-2])), lambda s: s[-2], "missing"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_every_mutation_is_detected(app, trail, mutation):
    change, first_bad, why = MUTATIONS[mutation]
    with app.app_context():
        assert verify(db.session).valid
        _unlock()
        change(trail)
        verdict = verify(db.session)
        assert not verdict.valid
        assert verdict.first_bad_seq == first_bad(trail)
        assert why in verdict.reason


def test_a_rehashed_suffix_passes_the_chain_but_not_the_checkpoint(app, trail):
    with app.app_context():
        kept = CheckpointSchema().dump(checkpoint_now(db.session))
        db.session.commit()
        rewrite_and_rehash(trail[2])
        assert verify(db.session).valid  # the chain alone cannot see it...
        verdict = extends(db.session, {**kept, "recorded_at": kept["recorded_at"]})
        assert verdict == {"valid": False, "reason": f"event {trail[-1]} no longer has the "
                                                     "checkpoint's hash: history was rewritten"}


def test_verify_a_range(app, client, auditor, trail):
    answer = client.get(f"/api/v1/audit/verify?from_seq={trail[1]}&to_seq={trail[3]}",
                        headers=bearer(auditor))
    assert answer.status_code == 200
    assert answer.json == {"valid": True, "checked": 3, "first_bad_seq": None, "reason": None,
                           "head": answer.json["head"]}
    assert answer.json["head"]["seq"] == trail[-1]


@pytest.mark.parametrize("query", ["from_seq=0", "to_seq=-1", "from_seq=5&to_seq=2",
                                   "from_seq=x", "everything=1"])
def test_verify_refuses_bad_ranges(client, make, query):
    token = make.token(make.organization(), ["audit:read"])
    answer = client.get(f"/api/v1/audit/verify?{query}", headers=bearer(token))
    assert answer.status_code == 422
    assert answer.json["type"] == "/problems/validation-error"


def test_the_verify_command_exits_1_and_names_the_first_bad_seq(app, trail):
    runner = app.test_cli_runner()
    good = runner.invoke(args=["audit", "verify"])
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["valid"] is True
    with app.app_context():
        _unlock()
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == trail[3])
                           .values(reason="edited"))
        db.session.commit()
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["first_bad_seq"] == trail[3]
    assert f"seq {trail[3]}" in bad.stderr


@pytest.mark.parametrize("args", [["--from-seq", "5", "--to-seq", "2"],
                                  ["--from-seq", "100000"]], ids=["inverted", "past-the-end"])
def test_the_verify_command_refuses_a_range_that_is_not_one_without_crying_tamper(
        app, trail, args):
    """Exit 1 is a tamper alarm: an operator's typo is a usage error (2), as the API's 422."""
    result = app.test_cli_runner().invoke(args=["audit", "verify", *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "broken" not in result.output


def test_the_verify_command_fails_when_the_log_no_longer_extends_the_checkpoint(app, trail):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["audit", "checkpoint"]).exit_code == 0
    with app.app_context():
        rewrite_and_rehash(trail[0])
        db.session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "history was rewritten" in json.loads(result.stdout)["reason"]


def test_the_verify_api_fails_when_the_log_no_longer_extends_a_stored_checkpoint(
        app, client, auditor, trail):
    """As the command does: an auditor who asks the service to verify, keeping no checkpoint
    of its own, still learns of a rewrite the service checkpointed."""
    token = auditor
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    with app.app_context():
        rewrite_and_rehash(trail[1])
        db.session.commit()
    answer = client.get("/api/v1/audit/verify", headers=bearer(token))
    assert answer.status_code == 200
    assert answer.json["valid"] is False
    assert answer.json["first_bad_seq"] == trail[-1]
    assert "history was rewritten" in answer.json["reason"]
    before = client.get(f"/api/v1/audit/verify?to_seq={trail[0]}", headers=bearer(token))
    assert before.json["valid"] is True  # no checkpoint in that range


def test_checkpoints_on_demand_signed_and_verifiable(app, client, make, trail):
    token = make.token(make.organization(), ["audit:read"])
    assert client.get("/api/v1/audit/checkpoints/latest",
                      headers=bearer(token)).status_code == 404
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=bearer(token))
    assert latest.status_code == 200
    assert latest.json == printed
    # The checkpoint covers the head at the moment it was made.
    assert printed["seq"] >= trail[-1]
    assert set(printed) == {"seq", "hash", "recorded_at", "key_id", "public_key", "signature"}

    valid = client.post("/api/v1/audit/checkpoints/verify", json=printed, headers=bearer(token))
    assert valid.status_code == 200
    assert valid.json == {"valid": True, "reason": None}


def _resign(checkpoint, key):
    public = key.public_key().public_bytes_raw()
    checkpoint = {**checkpoint, "key_id": key_id_of(public),
                  "public_key": base64.b64encode(public).decode()}
    message = signed_message(seq=checkpoint["seq"], hash=checkpoint["hash"],
                             recorded_at=checkpoint["recorded_at"], key_id=checkpoint["key_id"])
    return {**checkpoint, "signature": base64.b64encode(key.sign(message)).decode()}


@pytest.mark.parametrize("tamper,field", [
    (lambda c: {**c, "seq": c["seq"] - 1}, "signature"),
    (lambda c: {**c, "hash": "0" * 64}, "signature"),
    (lambda c: {**c, "signature": base64.b64encode(b"x" * 64).decode()}, "signature"),
    (lambda c: {**c, "signature": "not base64!"}, "signature"),
    (lambda c: _resign(c, Ed25519PrivateKey.generate()), "public_key"),
])
def test_a_checkpoint_with_a_bad_signature_or_a_foreign_key_is_422(app, client, make, trail,
                                                                   tamper, field):
    token = make.token(make.organization(), ["audit:read"])
    kept = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    answer = client.post("/api/v1/audit/checkpoints/verify", json=tamper(kept),
                         headers=bearer(token))
    assert answer.status_code == 422
    assert field in answer.json["errors"]


def test_checkpoints_on_a_schedule_after_commits(app, client, make):
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    form = {"grant_type": "client_credentials"}
    headers = {"Authorization": "Basic " + base64.b64encode(
        f"{oauth_client.client_id}:{secret}".encode()).decode()}
    start = clock.now()
    app.config["AUDIT_CHECKPOINT_INTERVAL"] = 60
    schedule = app.extensions["audit_schedule"]
    saved = dict(schedule)
    schedule["next_look"] = start
    try:
        seqs = []
        for offset in (0, 10, 61):
            clock.freeze(start + timedelta(seconds=offset))
            assert client.post("/oauth/token", data=form, headers=headers).status_code == 200
            with app.app_context():
                seqs.append(db.session.scalar(sa.select(AuditChainHead.seq)))
        with app.app_context():
            made = list(db.session.scalars(sa.select(AuditCheckpoint.seq)
                                           .order_by(AuditCheckpoint.seq)))
    finally:
        app.config["AUDIT_CHECKPOINT_INTERVAL"] = 0
        schedule.update(saved)
    assert made == [seqs[0], seqs[2]]


def test_the_checkpoint_command_refuses_an_empty_log(app):
    with app.app_context():
        if db.session.scalar(sa.select(AuditChainHead.seq)) != 0:
            pytest.skip("the suite database already holds events")
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code != 0
    assert "empty" in result.output


def _plant(seq, event_hash, key, at):
    """What whoever can write to the database can do: insert a checkpoint row of its own
    (the append-only triggers refuse updates and deletes, not inserts)."""
    public = key.public_key().public_bytes_raw()
    planted = _resign({"seq": seq, "hash": event_hash, "recorded_at": clock.rfc3339(at)}, key)
    db.session.execute(sa.insert(AuditCheckpoint).values({**planted, "recorded_at": at}))
    assert planted["public_key"] == base64.b64encode(public).decode()
    return planted


def test_a_key_named_by_a_row_in_the_table_is_not_the_services(app, client, make, trail):
    """Only the configured keys are the service's: a planted row does not make a foreign key
    trusted, and `latest` passes over it."""
    forger = Ed25519PrivateKey.generate()
    token = make.token(make.organization(), ["audit:read"])
    kept = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    with app.app_context():
        audit.record(action="read", outcome="permit", reason="later", resource_type="audit_event")
        db.session.commit()
        head = db.session.execute(sa.select(AuditChainHead)).scalar_one()
        planted = _plant(head.seq, head.hash, forger, clock.now())
        db.session.commit()
    forged = client.post("/api/v1/audit/checkpoints/verify", json=planted,
                         headers=bearer(token))
    assert forged.status_code == 422
    assert "public_key" in forged.json["errors"]
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=bearer(token))
    assert latest.json == kept


def test_the_verify_command_checks_every_checkpoints_signature(app, trail):
    """A rewrite re-hashed to the head, with an unsigned checkpoint planted at the new head,
    still fails: the genuine checkpoint before it no longer holds, and the planted one is
    named as not the service's."""
    runner = app.test_cli_runner()
    genuine = json.loads(runner.invoke(args=["audit", "checkpoint"]).stdout)
    with app.app_context():
        audit.record(action="read", outcome="permit", reason="later", resource_type="audit_event")
        db.session.commit()
        head = db.session.execute(sa.select(AuditChainHead)).scalar_one()
        planted = _plant(head.seq, head.hash, Ed25519PrivateKey.generate(), clock.now())
        db.session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert printed["first_bad_seq"] == planted["seq"]
    assert "not signed by this service" in printed["reason"]

    with app.app_context():
        rewrite_and_rehash(trail[0])
        db.session.commit()
    printed = json.loads(runner.invoke(args=["audit", "verify"]).stdout)
    assert printed["valid"] is False
    assert printed["first_bad_seq"] == genuine["seq"]
    assert "history was rewritten" in printed["reason"]


def test_a_retired_key_listed_in_the_configuration_still_verifies(app, client, make, trail,
                                                                  monkeypatch):
    retired = Ed25519PrivateKey.generate()
    token = make.token(make.organization(), ["audit:read"])
    kept = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    signed_before = _resign(kept, retired)
    assert client.post("/api/v1/audit/checkpoints/verify", json=signed_before,
                       headers=bearer(token)).status_code == 422
    listed = load_previous_public_keys(f"{kept['public_key']}, {signed_before['public_key']}")
    monkeypatch.setitem(app.extensions, "audit_previous_keys", listed)
    answer = client.post("/api/v1/audit/checkpoints/verify", json=signed_before,
                         headers=bearer(token))
    assert answer.status_code == 200
    assert answer.json == {"valid": True, "reason": None}


@pytest.mark.parametrize("configured", ["not base64!", base64.b64encode(b"short").decode()])
def test_previous_public_keys_that_are_not_keys_are_refused_at_start(configured):
    with pytest.raises(SigningKeyError):
        load_previous_public_keys(configured)


def test_a_range_past_the_newest_event_is_422_not_valid(app, client, make, trail):
    """After the tail is cut and the head moved back, verifying up to the old head must not
    answer valid for events the log no longer holds."""
    token = make.token(make.organization(), ["audit:read"])
    with app.app_context():
        _unlock()
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq >= trail[-2]))
        last = db.session.execute(sa.select(AuditEvent).where(AuditEvent.seq == trail[-3])
                                  ).scalar_one()
        db.session.execute(sa.update(AuditChainHead).values(seq=last.seq, hash=last.hash))
        db.session.commit()
    answer = client.get(f"/api/v1/audit/verify?from_seq={trail[0]}&to_seq={trail[-1]}",
                        headers=bearer(token))
    assert answer.status_code == 422
    assert "to_seq" in answer.json["errors"]


def test_checked_never_counts_past_the_events_in_the_range(app, trail):
    """A listed family planted far beyond the head is reported at its seq, and `checked` says
    every event of the log was checked, not the planted seq's distance (found by a review)."""
    from audit.models import AuditListedFamily

    with app.app_context():
        head = db.session.scalar(sa.select(AuditChainHead.seq))
        db.session.execute(sa.insert(AuditListedFamily).values(family_id=uuid.uuid4(),
                                                               seq=head + 1000))
        db.session.commit()
        verdict = verify(db.session)
        assert (verdict.valid, verdict.first_bad_seq) == (False, head + 1000)
        assert verdict.checked == head
