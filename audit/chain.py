"""The hash chain: canonical serialization, hashing, and verification of the stored log."""

import hashlib
import json
from dataclasses import dataclass

import sqlalchemy as sa

from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent
from core.time import rfc3339

#: The hashed fields, in canonical (sorted) order; `hash` covers all of them, `prev_hash` included.
HASHED_FIELDS = tuple(sorted((
    "seq", "id", "recorded_at", "action", "outcome", "reason", "organization_id", "client_id",
    "token_id", "purpose", "resource_type", "resource_id", "family_id", "categories",
    "consent_ids", "request_id", "request_method", "request_path", "request_ip", "prev_hash",
)))
_COLUMNS = [getattr(AuditEvent, name) for name in HASHED_FIELDS] + [AuditEvent.hash]
_UUID_FIELDS = {"id", "organization_id", "token_id", "family_id"}
_SEQ = HASHED_FIELDS.index("seq")
_PREV = HASHED_FIELDS.index("prev_hash")
VERIFY_BATCH = 20_000


def canonical_document(values: dict) -> dict:
    """The JSON-safe form of an event's hashed fields: strings, numbers, lists and nulls."""
    document = {}
    for name in HASHED_FIELDS:
        value = values.get(name)
        if value is not None and (name in _UUID_FIELDS):
            value = str(value)
        elif name == "recorded_at":
            value = rfc3339(value)
        elif name in ("categories", "consent_ids"):
            value = [str(v) for v in (value or [])]
        document[name] = value
    return document


def event_hash(values: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of an event's fields, `prev_hash` included."""
    return _digest(canonical_document(values))


def _digest(document: dict) -> str:
    # Keys are already in sorted order; compact separators; UTF-8. A verifier in any language
    # rebuilds the same bytes from an exported event.
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Verdict:
    valid: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None
    head: dict

    def as_dict(self) -> dict:
        return {"valid": self.valid, "checked": self.checked, "first_bad_seq": self.first_bad_seq,
                "reason": self.reason, "head": self.head}


def chain_head(session) -> AuditChainHead:
    return session.scalars(sa.select(AuditChainHead).where(AuditChainHead.id == 1)).one()


def verify(session, from_seq: int | None = None, to_seq: int | None = None) -> Verdict:
    """Recompute the chain over [from_seq, to_seq] (default: the whole log) and compare.

    A range that starts after 1 trusts the stored hash of the event just before it.
    """
    head = chain_head(session)
    head_doc = {"seq": head.seq, "hash": head.hash}
    start = from_seq or 1
    end = head.seq if to_seq is None else min(to_seq, head.seq)
    whole_tail = to_seq is None or to_seq >= head.seq

    def bad(seq, reason, checked):
        return Verdict(False, checked, seq, reason, head_doc)

    if start == 1:
        prev = GENESIS_HASH
    else:
        prev = session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == start - 1))
        if prev is None:
            return bad(start - 1, f"event {start - 1} is missing", 0)

    expected = start
    checked = 0
    while expected <= end:
        upper = min(expected + VERIFY_BATCH - 1, end)
        rows = session.execute(
            sa.select(*_COLUMNS).where(AuditEvent.seq.between(expected, upper))
            .order_by(AuditEvent.seq)
        ).all()
        for row in rows:
            seq = row[_SEQ]
            if seq != expected:
                return bad(expected, f"event {expected} is missing", checked)
            if row[_PREV] != prev:
                return bad(seq, f"prev_hash of event {seq} is not the hash of event {seq - 1}",
                           checked)
            if event_hash(dict(zip(HASHED_FIELDS, row, strict=False))) != row[-1]:
                return bad(seq, f"event {seq} does not hash to its stored hash", checked)
            prev = row[-1]
            expected += 1
            checked += 1
        if not rows or rows[-1][_SEQ] < upper:
            return bad(expected, f"event {expected} is missing", checked)

    if whole_tail:
        if head.seq and prev != head.hash:
            return bad(head.seq, "the newest event does not match the chain head", checked)
        beyond = session.scalar(sa.select(sa.func.min(AuditEvent.seq))
                                .where(AuditEvent.seq > head.seq))
        if beyond is not None:
            return bad(beyond, f"event {beyond} lies beyond the chain head", checked)
    return Verdict(True, checked, None, None, head_doc)
