"""Signed checkpoints (Ed25519) of the chain head, and proof that today's log extends one."""

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

from audit.chain import UNREADABLE, verify
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.sealer import seal_committed
from core.config import ConfigError
from core.time import now, rfc3339

log = logging.getLogger(__name__)
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class SigningKeyError(ConfigError):
    """AUDIT_SIGNING_KEY or AUDIT_PREVIOUS_PUBLIC_KEYS does not hold an Ed25519 key: the
    service does not start (a configuration error, not a traceback)."""


def load_signing_key(configured: str | None, instance_path: Path) -> Ed25519PrivateKey:
    """The key from configuration (PEM, or base64 of the 32-byte seed), else the instance's own.

    The instance key is generated on first use and kept beside the SQLite default.
    """
    if configured:
        try:
            if "BEGIN" in configured:
                key = serialization.load_pem_private_key(configured.encode(), password=None)
            else:
                key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(configured))
        except (ValueError, TypeError, binascii.Error) as error:
            raise SigningKeyError("AUDIT_SIGNING_KEY is not an Ed25519 private key") from error
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("AUDIT_SIGNING_KEY must be an Ed25519 key")
        return key
    path = instance_path / "audit_signing_key.pem"
    if not path.exists():
        _generate_once(path)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _generate_once(path: Path) -> None:
    """Write a new key to `path` unless another process of this instance did first: the
    workers of a fresh instance start at once, and each keeping a key of its own would sign
    checkpoints that, after a restart, are no longer the service's (a false tamper alarm)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    # Written whole under another name, then linked into place: a link fails when the name
    # exists, so one key wins, and no reader sees half of one.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(pem)
    try:
        os.link(draft, path)
        log.warning("AUDIT_SIGNING_KEY is unset; generated an Ed25519 key into %s", path)
    except FileExistsError:
        pass  # another process made it first: everyone uses that one
    finally:
        draft.unlink()


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(*_RAW)).decode()


def key_id_of(public_key_raw: bytes) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


def signed_message(*, seq: int, hash: str, recorded_at: str, key_id: str) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return json.dumps({"hash": hash, "key_id": key_id, "recorded_at": recorded_at, "seq": seq},
                      separators=(",", ":")).encode()


def make_checkpoint(connection, *, seq: int, event_hash: str, at) -> None:
    """Sign (seq, hash, time) with the service's key and store it."""
    key: Ed25519PrivateKey = current_app.extensions["audit_signing_key"]
    public = key.public_key().public_bytes(*_RAW)
    key_id = key_id_of(public)
    signature = key.sign(signed_message(seq=seq, hash=event_hash, recorded_at=rfc3339(at),
                                        key_id=key_id))
    connection.execute(sa.insert(AuditCheckpoint.__table__).values(
        seq=seq, hash=event_hash, recorded_at=at, key_id=key_id,
        public_key=base64.b64encode(public).decode(),
        signature=base64.b64encode(signature).decode()))


# Read again once locked, into a head this session may hold from before the seal.
_HEAD_LOCKED = (sa.select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
                .execution_options(populate_existing=True))


def checkpoint_now(session) -> AuditCheckpoint:
    """Checkpoint the current head (or return the one already made at it).

    Raises LookupError when the log is empty, and PlantedCheckpoint when a checkpoint this
    service did not sign holds the head's place.
    """
    seal_committed(session)
    head = session.execute(_HEAD_LOCKED).scalar_one()
    if head.seq == 0:
        raise LookupError("the audit log is empty; there is nothing to checkpoint")
    existing = _stored_at(session, head.seq)
    if existing is not None:
        return existing
    at = now()
    make_checkpoint(session.connection(), seq=head.seq, event_hash=head.hash, at=at)
    head.checkpointed_at = at
    session.flush()
    return session.get(AuditCheckpoint, head.seq)


def checkpoint_if_due(session, interval: timedelta) -> bool:
    """Checkpoint the head when the newest checkpoint is older than `interval` (any worker)."""
    seal_committed(session)
    head = session.execute(_HEAD_LOCKED).scalar_one()
    at = now()
    if head.seq == 0 or (head.checkpointed_at is not None
                         and at - head.checkpointed_at < interval):
        return False
    try:
        if _stored_at(session, head.seq) is None:
            make_checkpoint(session.connection(), seq=head.seq, event_hash=head.hash, at=at)
    except PlantedCheckpoint as planted:
        log.error("%s", planted)  # and the next head is checkpointed, by the next commit
        return False
    head.checkpointed_at = at
    return True


class PlantedCheckpoint(LookupError):
    """A checkpoint this service did not sign holds a seq's place in the table."""


def _stored_at(session, seq: int) -> AuditCheckpoint | None:
    """The service's own checkpoint at `seq`, or None. Raises PlantedCheckpoint for a row
    there that it did not sign: never handed out, nor taken for the head being checkpointed."""
    existing = session.get(AuditCheckpoint, seq)
    if existing is not None and not is_genuine(as_kept(existing)):
        raise PlantedCheckpoint(
            f"a checkpoint at event {seq} that this service did not sign is in the table: "
            "the trail has been written to outside the service (run `flask audit verify`)")
    return existing


def as_kept(checkpoint: AuditCheckpoint) -> dict:
    """A stored checkpoint as an auditor would keep it (and as its signature covers it)."""
    return {"seq": checkpoint.seq, "hash": checkpoint.hash, "recorded_at": checkpoint.recorded_at,
            "key_id": checkpoint.key_id, "public_key": checkpoint.public_key,
            "signature": checkpoint.signature}


def _service_public_keys() -> list[str]:
    """The public keys this service signs or signed with (base64), from its configuration."""
    return [public_key_b64(current_app.extensions["audit_signing_key"].public_key()),
            *current_app.extensions["audit_previous_keys"]]


def latest_checkpoint(session) -> AuditCheckpoint | None:
    """The newest checkpoint the service itself signed. Rows under another key are not read;
    a row under one of its keys whose signature fails (someone wrote it into the table) is
    passed over and logged, however many there are, and `flask audit verify` names it."""
    mine = sa.select(AuditCheckpoint).where(
        AuditCheckpoint.public_key.in_(_service_public_keys())).order_by(
        AuditCheckpoint.seq.desc()).limit(100)
    below = None
    while True:
        batch = session.scalars(mine if below is None
                                else mine.where(AuditCheckpoint.seq < below)).all()
        for checkpoint in batch:
            if is_genuine(as_kept(checkpoint)):
                return checkpoint
            log.warning("audit checkpoint at seq %s is not signed by this service",
                        checkpoint.seq)
        if len(batch) < 100:
            return None
        below = batch[-1].seq


def broken_checkpoint(session, from_seq: int | None = None,
                      to_seq: int | None = None) -> tuple[int, str] | None:
    """The first stored checkpoint in the range that is not the service's own, or that the
    log no longer hashes to at its seq, and why; None when every one holds.

    Run after the chain verified over the same range: each event's stored hash is then the
    recomputed one, so comparing it with the checkpoint's is enough.
    """
    table = AuditCheckpoint.__table__
    # The time as stored (SQLite keeps whatever is written into a column): one that is no
    # time is a checkpoint someone wrote, reported at its seq rather than raised.
    stmt = (sa.select(*(sa.type_coerce(c, sa.types.NullType()) if c.key == "recorded_at"
                        else c for c in table.c), AuditEvent.hash.label("stored"))
            .outerjoin(AuditEvent, AuditEvent.seq == table.c.seq)
            .order_by(table.c.seq))
    if from_seq is not None:
        stmt = stmt.where(table.c.seq >= from_seq)
    if to_seq is not None:
        stmt = stmt.where(table.c.seq <= to_seq)
    read_time = AuditCheckpoint.recorded_at.type.dialect_impl(
        session.get_bind().dialect).result_processor(session.get_bind().dialect, None)
    for row in session.execute(stmt):
        kept = {name: row._mapping[name] for name in
                ("seq", "hash", "recorded_at", "key_id", "public_key", "signature")}
        try:
            kept["recorded_at"] = read_time(kept["recorded_at"]) if read_time \
                else kept["recorded_at"]
            genuine = is_genuine(kept)
        except UNREADABLE:
            genuine = False
        if not genuine:
            return row.seq, (f"the checkpoint at event {row.seq} is not signed by this "
                             "service: someone wrote it into the table")
        broken = _hash_broken(row.seq, row.stored, row.hash)
        if broken:
            return row.seq, broken
    return None


def _hash_broken(seq: int, stored: str | None, kept: str) -> str | None:
    """Why the log's event at `seq` (its stored hash) no longer matches a checkpoint's hash;
    None when it does."""
    if stored is None:
        return f"the log no longer holds event {seq}"
    if stored != kept:
        return f"event {seq} no longer has the checkpoint's hash: history was rewritten"
    return None


def signature_is_valid(checkpoint: dict) -> bool:
    """Whether the checkpoint's signature verifies under its own public key and key id."""
    try:
        public_raw = base64.b64decode(checkpoint["public_key"], validate=True)
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        public = Ed25519PublicKey.from_public_bytes(public_raw)
        if key_id_of(public_raw) != checkpoint["key_id"]:
            return False
        public.verify(signature, signed_message(
            seq=checkpoint["seq"], hash=checkpoint["hash"],
            recorded_at=rfc3339(checkpoint["recorded_at"]), key_id=checkpoint["key_id"]))
    except (ValueError, OverflowError, binascii.Error, InvalidSignature):
        return False
    return True


def load_previous_public_keys(configured: str | None) -> frozenset[str]:
    """The retired keys this service signed with before (AUDIT_PREVIOUS_PUBLIC_KEYS: base64 of
    each raw 32-byte Ed25519 public key, separated by spaces or commas)."""
    keys = set()
    for text in (configured or "").replace(",", " ").split():
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except (ValueError, binascii.Error) as error:
            raise SigningKeyError("AUDIT_PREVIOUS_PUBLIC_KEYS holds a value that is not an "
                                  "Ed25519 public key") from error
        keys.add(text)
    return frozenset(keys)


def is_service_key(public_key: str) -> bool:
    """Whether this service signs or signed with that key: the configured key, or one of the
    configured retired ones. Never a key read from the database: a checkpoint exists to catch
    whoever can write there."""
    return public_key in _service_public_keys()


def is_genuine(checkpoint: dict) -> bool:
    """Whether a checkpoint is the service's own: a signature that verifies, by a key of its."""
    return signature_is_valid(checkpoint) and is_service_key(checkpoint["public_key"])


def extends(session, checkpoint: dict) -> dict:
    """Whether today's log still hashes to a checkpoint an auditor kept, at its seq."""
    seq = checkpoint["seq"]
    stored = session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == seq))
    broken = _hash_broken(seq, stored, checkpoint["hash"])
    if broken:
        return {"valid": False, "reason": broken}
    verdict = verify(session, 1, seq)
    if not verdict.valid:
        return {"valid": False, "reason": f"event {verdict.first_bad_seq}: {verdict.reason}"}
    return {"valid": True, "reason": None}
