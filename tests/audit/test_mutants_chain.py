"""Verification's first broken seq (audit/chain.py), where a mutation review found no test
pinning it down: the test here failed against a hand-made mutant of the chain's checker and
passes on it as written."""

import uuid

import sqlalchemy as sa

import audit
from audit.chain import verify
from audit.models import AuditChainHead, AuditEvent, AuditListedFamily
from core.db import db
from tests.audit.conftest import rewrite_and_rehash, unlock


def test_a_misfiled_family_before_a_broken_hash_is_the_first_bad_seq(app):
    """Two tamperings in one range: a family planted in the index beside the second event,
    and the fourth event's reason rewritten. Verify names the earlier one, the planted
    family, whichever check found it (mutant: a chain break found in the same batch wins
    over the misfiled family, even when it comes later)."""
    with app.app_context():
        first = db.session.scalar(sa.select(AuditChainHead.seq)) + 1
        for n in range(5):
            audit.record(action="read", outcome="permit", reason=f"event-{n}",
                         resource_type="audit_event")
            db.session.commit()
        seqs = list(range(first, first + 5))
        assert verify(db.session).valid

        db.session.execute(sa.insert(AuditListedFamily).values(family_id=uuid.uuid4(),
                                                               seq=seqs[1]))
        unlock("audit_events")
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == seqs[3])
                           .values(reason="rewritten"))
        db.session.commit()

        verdict = verify(db.session)
        assert (verdict.valid, verdict.first_bad_seq) == (False, seqs[1])
        assert "families listed" in verdict.reason
        assert verdict.checked == seqs[1] - 1

        ranged = verify(db.session, seqs[0], seqs[-1])
        assert (ranged.valid, ranged.first_bad_seq) == (False, seqs[1])


def _events(n):
    first = db.session.scalar(sa.select(AuditChainHead.seq)) + 1
    for k in range(n):
        audit.record(action="read", outcome="permit", reason=f"event-{k}",
                     resource_type="audit_event")
        db.session.commit()
    return list(range(first, first + n))


def test_a_rehashed_chain_that_left_the_head_behind_fails_at_the_head(app):
    """A forger rewrites an event and recomputes every hash after it, but leaves the chain
    head as it was: each event chains to the one before, so only the head tells. Verify of
    the whole log, and of any range that reaches the head, names the head's seq (mutants:
    the head's hash not compared; a range ending at the head not taken to reach it)."""
    with app.app_context():
        seqs = _events(4)
        head = db.session.scalar(sa.select(AuditChainHead.seq))
        rewrite_and_rehash(seqs[1], move_head=False)
        db.session.commit()

        for verdict in (verify(db.session), verify(db.session, 1, head),
                        verify(db.session, seqs[0], head)):
            assert (verdict.valid, verdict.first_bad_seq) == (False, head), verdict
            assert verdict.reason == "the newest event does not match the chain head"
        # A range short of the head trusts what it holds.
        assert verify(db.session, seqs[0], head - 1).valid


def test_a_family_listed_below_the_first_event_is_reported_at_its_seq(app):
    """The index the family filters and the accounting read holds a row at seq 0, below the
    chain, beside no event (the database refuses one: its guard lifted, as whoever holds it
    can). Verify of the whole log reaches below the first event for it and
    names seq 0, having checked no event before it (mutant: the first batch's listed
    families checked only from its first event)."""
    with app.app_context():
        _events(2)
        # The guard that refuses a row below seq 1 removed, as whoever holds the database can
        # (rolled back with the test's transaction).
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ALTER TABLE audit_listed_families "
                                       "DROP CONSTRAINT ck_audit_listed_families_seq_from_1"))
        else:
            db.session.execute(sa.text("DROP TRIGGER audit_listed_families_seq_from_1"))
        db.session.execute(sa.insert(AuditListedFamily).values(family_id=uuid.uuid4(), seq=0))
        db.session.commit()

        verdict = verify(db.session)
        assert (verdict.valid, verdict.first_bad_seq, verdict.checked) == (False, 0, 0)
        assert "families listed" in verdict.reason


def test_a_kept_checkpoint_is_not_extended_by_a_log_broken_below_it(app):
    """An auditor keeps a checkpoint of the head; then an event below it is edited in place
    (no hash recomputed). The checkpoint's own event still has its hash, but today's log no
    longer hashes to it from the first event: extends says not valid, naming the edited
    event (mutant: only the checkpoint's own event checked)."""
    from audit.checkpoints import checkpoint_now, extends
    from audit.schemas import CheckpointSchema

    with app.app_context():
        seqs = _events(4)
        kept = CheckpointSchema().dump(checkpoint_now(db.session))
        db.session.commit()
        assert extends(db.session, kept) == {"valid": True, "reason": None}

        unlock("audit_events")
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == seqs[1])
                           .values(reason="edited"))
        db.session.commit()

        assert extends(db.session, kept) == {
            "valid": False,
            "reason": f"event {seqs[1]}: event {seqs[1]} does not hash to its stored hash"}


def test_a_checkpoint_whose_key_id_does_not_name_its_key_is_a_bad_signature(
        app, client, make):
    """`key_id` names the public key (its SHA-256's first 16 hex digits). A checkpoint
    signed over another `key_id`, by the service's own key or by a foreign key claiming the
    service's key id, is 422 naming `signature`, not taken for the service's (mutant: the
    key id not checked against the key; the first then verified as valid)."""
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoints import key_id_of, signed_message
    from tests.conftest import bearer

    def signed(checkpoint, key, key_id):
        public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
        message = signed_message(seq=checkpoint["seq"], hash=checkpoint["hash"],
                                 recorded_at=checkpoint["recorded_at"], key_id=key_id)
        return {**checkpoint, "key_id": key_id, "public_key": public,
                "signature": base64.b64encode(key.sign(message)).decode()}

    with app.app_context():
        _events(1)
        service_key = app.extensions["audit_signing_key"]
    token = bearer(make.token(make.organization(), ["audit:read"]))
    kept = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)
    assert kept["key_id"] == key_id_of(service_key.public_key().public_bytes_raw())
    url = "/api/v1/audit/checkpoints/verify"
    assert client.post(url, json=signed(kept, service_key, kept["key_id"]),
                       headers=token).json == {"valid": True, "reason": None}

    for forged in (signed(kept, service_key, "0123456789abcdef"),
                   signed(kept, Ed25519PrivateKey.generate(), kept["key_id"])):
        answer = client.post(url, json=forged, headers=token)
        assert answer.status_code == 422, answer.json
        assert set(answer.json["errors"]) == {"signature"}


def test_a_range_starting_at_a_checkpoint_checks_that_checkpoint(app, client, make):
    """A checkpoint stored at seq N; then history rewritten below it and rehashed (the chain
    alone holds). Verify of the range N..N still finds the checkpoint at N no longer
    matching: a range's bounds include the checkpoints at them (mutant: from_seq exclusive
    for checkpoints)."""
    from audit.checkpoints import checkpoint_now
    from tests.conftest import bearer

    with app.app_context():
        seqs = _events(3)
        checkpoint = checkpoint_now(db.session).seq
        db.session.commit()
        assert checkpoint == seqs[-1]
        rewrite_and_rehash(seqs[0])
        db.session.commit()
    token = bearer(make.token(make.organization(), ["audit:read"]))

    for query in (f"from_seq={checkpoint}&to_seq={checkpoint}", f"from_seq={checkpoint}"):
        answer = client.get(f"/api/v1/audit/verify?{query}", headers=token)
        assert answer.status_code == 200, answer.json
        assert (answer.json["valid"], answer.json["first_bad_seq"]) == (False, checkpoint)
        assert "history was rewritten" in answer.json["reason"]


def test_a_checkpoint_is_due_when_exactly_the_interval_has_passed(app):
    """`AUDIT_CHECKPOINT_INTERVAL` after the last checkpoint, to the microsecond, the next
    is due; a microsecond before, not (mutant: due only once more than the interval has
    passed)."""
    from datetime import UTC, datetime, timedelta

    from audit.checkpoints import checkpoint_if_due, checkpoint_now
    from audit.models import AuditCheckpoint
    from core import time as clock

    start = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    interval = timedelta(minutes=10)
    with app.app_context():
        clock.freeze(start)
        _events(1)
        checkpoint_now(db.session)
        db.session.commit()
        clock.freeze(start + interval - timedelta(microseconds=1))
        head = _events(1)[0]
        assert checkpoint_if_due(db.session, interval) is False
        db.session.commit()
        assert db.session.get(AuditCheckpoint, head) is None
        clock.freeze(start + interval)
        assert checkpoint_if_due(db.session, interval) is True
        db.session.commit()
        assert db.session.get(AuditCheckpoint, head) is not None
