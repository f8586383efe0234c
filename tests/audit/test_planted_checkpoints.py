"""Checkpoints planted in the table by whoever can write there: never handed out, never taken
for the service's own, and they stop no genuine checkpoint for long."""

import base64
import json
import os
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit
from audit.checkpoints import checkpoint_if_due, key_id_of, signed_message
from audit.models import AuditChainHead, AuditCheckpoint
from core import time as clock
from core.db import db
from tests.conftest import bearer


def _plant(seq, event_hash, key, at):
    """What whoever can INSERT into audit_checkpoints can do (the append-only triggers refuse
    UPDATE and DELETE, not INSERT; seq has no foreign key, so a future seq works too)."""
    public = key.public_key().public_bytes_raw()
    key_id = key_id_of(public)
    signature = key.sign(signed_message(seq=seq, hash=event_hash,
                                        recorded_at=clock.rfc3339(at), key_id=key_id))
    db.session.execute(sa.insert(AuditCheckpoint).values(
        seq=seq, hash=event_hash, recorded_at=at, key_id=key_id,
        public_key=base64.b64encode(public).decode(),
        signature=base64.b64encode(signature).decode()))


def _an_event():
    audit.record(action="read", outcome="permit", reason="review", resource_type="audit_event")
    db.session.commit()


@pytest.fixture
def head(app):
    """A committed event; yields the chain head (seq, hash)."""
    with app.app_context():
        _an_event()
        row = db.session.execute(sa.select(AuditChainHead)).scalar_one()
        return row.seq, row.hash


def test_the_checkpoint_command_never_prints_a_checkpoint_the_service_did_not_sign(
        app, client, make, head):
    """A row planted at the head's seq is refused loudly by `flask audit checkpoint` (never
    printed as the service's), and the next head gets a genuine checkpoint."""
    seq, event_hash = head
    with app.app_context():
        _plant(seq, event_hash, Ed25519PrivateKey.generate(), clock.now())
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"checkpoint at event {seq} that this service did not sign" in result.output
    with app.app_context():
        _an_event()  # the next head is the service's to checkpoint
    printed = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    token = make.token(make.organization(), ["audit:read"])
    answer = client.post("/api/v1/audit/checkpoints/verify", json=printed,
                         headers=bearer(token))
    assert answer.status_code == 200, answer.json
    assert (printed["seq"], answer.json) == (seq + 1, {"valid": True, "reason": None})


def test_a_planted_future_row_does_not_stop_the_schedule_from_signing(app, client, make, head):
    """A row planted at a future seq takes that seq's place from the schedule, not the next
    one's: `latest` then hands out the service's checkpoint of the next head."""
    seq, _ = head
    with app.app_context():
        _plant(seq + 1, "0" * 64, Ed25519PrivateKey.generate(), clock.now())
        db.session.commit()
        _an_event()  # the head reaches the planted seq
        assert db.session.scalar(sa.select(AuditChainHead.seq)) == seq + 1
        assert not checkpoint_if_due(db.session, timedelta(seconds=0))  # its place is taken
        db.session.commit()
        _an_event()
        assert checkpoint_if_due(db.session, timedelta(seconds=0))  # the next head's is not
        db.session.commit()
    token = make.token(make.organization(), ["audit:read"])
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=bearer(token))
    assert latest.status_code == 200, latest.json
    assert latest.json["seq"] == seq + 2


def test_after_a_rotation_listed_in_the_configuration_every_operator_path_accepts_the_old_key(
        app, client, make, head, monkeypatch):
    """A checkpoint signed by a retired key listed in AUDIT_PREVIOUS_PUBLIC_KEYS still
    verifies through `flask audit verify`, `latest` and POST .../checkpoints/verify."""
    from audit.checkpoints import load_previous_public_keys

    runner = app.test_cli_runner()
    old = json.loads(runner.invoke(args=["audit", "checkpoint"]).stdout)
    monkeypatch.setitem(app.extensions, "audit_signing_key", Ed25519PrivateKey.generate())
    monkeypatch.setitem(app.extensions, "audit_previous_keys",
                        load_previous_public_keys(old["public_key"]))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    token = make.token(make.organization(), ["audit:read"])
    assert client.get("/api/v1/audit/checkpoints/latest", headers=bearer(token)).json == old
    answer = client.post("/api/v1/audit/checkpoints/verify", json=old, headers=bearer(token))
    assert answer.json == {"valid": True, "reason": None}
    with app.app_context():
        _an_event()
    new = json.loads(runner.invoke(args=["audit", "checkpoint"]).stdout)
    assert new["public_key"] != old["public_key"]
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


@pytest.mark.no_db
def test_a_bad_previous_public_key_is_a_configuration_error_not_a_traceback(monkeypatch, tmp_path):
    """A key that is not one stops the service with a configuration error on standard error,
    as any other bad setting does, not a traceback."""
    import app as app_module

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    monkeypatch.setenv("AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("AUDIT_PREVIOUS_PUBLIC_KEYS", "not-a-key")
    monkeypatch.delitem(app_module.__dict__, "app", raising=False)
    with pytest.raises(SystemExit) as exited:
        app_module.__getattr__("app")
    assert str(exited.value.code).startswith("configuration error:")


def test_the_processes_of_a_fresh_instance_all_sign_with_one_generated_key(tmp_path,
                                                                          monkeypatch):
    """Without AUDIT_SIGNING_KEY, workers starting at once each see no key yet: one key is
    generated for all of them, or their checkpoints would not be the service's after a
    restart."""
    from pathlib import Path

    from audit.checkpoints import load_signing_key

    monkeypatch.setattr(Path, "exists", lambda self: False)  # every worker is in the window
    keys = [load_signing_key(None, tmp_path) for _ in range(3)]
    monkeypatch.undo()
    public = {key.public_key().public_bytes_raw() for key in keys}
    assert len(public) == 1
    assert public == {load_signing_key(None, tmp_path).public_key().public_bytes_raw()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit_signing_key.pem"]
    assert (tmp_path / "audit_signing_key.pem").stat().st_mode & 0o777 == 0o600
