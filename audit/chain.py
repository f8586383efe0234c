"""The hash chain: canonical serialization, hashing, and verification of the stored log."""

import functools
import hashlib
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditListedFamily
from core.time import rfc3339

#: The hashed fields, in canonical order; `hash` covers all of them, `prev_hash` included.
#: The first twenty are sorted; `family_ids` came later and goes last (see event_hash). Also
#: the arguments of PostgreSQL's audit_event_hash, in order (migration 0006).
HASHED_FIELDS = (
    "action", "categories", "client_id", "consent_ids", "family_id", "id", "organization_id",
    "outcome", "prev_hash", "purpose", "reason", "recorded_at", "request_id", "request_ip",
    "request_method", "request_path", "resource_id", "resource_type", "seq", "token_id",
    "family_ids",
)
_SEQ = HASHED_FIELDS.index("seq")
_PREV = HASHED_FIELDS.index("prev_hash")
VERIFY_BATCH = 50_000


def text_or_none(value):
    """str(value), or None for None."""
    return None if value is None else str(value)


def _canonical_values(values) -> list:
    """The hashed fields' values in HASHED_FIELDS order, as JSON-safe values."""
    get = values.get
    recorded_at = get("recorded_at")
    canonical = [
        get("action"),
        [str(v) for v in get("categories") or ()],
        get("client_id"),
        [str(v) for v in get("consent_ids") or ()],
        text_or_none(get("family_id")),
        text_or_none(get("id")),
        text_or_none(get("organization_id")),
        get("outcome"),
        get("prev_hash"),
        get("purpose"),
        get("reason"),
        None if recorded_at is None else rfc3339(recorded_at),
        get("request_id"),
        get("request_ip"),
        get("request_method"),
        get("request_path"),
        get("resource_id"),
        get("resource_type"),
        get("seq"),
        text_or_none(get("token_id")),
    ]
    family_ids = get("family_ids")
    # Left out when empty, so events chained before the field keep their bytes. Anything else
    # (a tampered value too) goes in as stored, as audit_event_hash appends the jsonb value.
    if family_ids is not None and family_ids != [] and family_ids != ():
        canonical.append(list(family_ids) if isinstance(family_ids, tuple) else family_ids)
    return canonical


#: JSON with ", " between items and non-ASCII kept, built once: byte for byte the text of
#: PostgreSQL's json_build_array(...), which chains events there (migrations 0004, 0006).
_encode = json.JSONEncoder(ensure_ascii=False).encode


def event_hash(values: dict) -> str:
    """SHA-256 (hex) of the UTF-8 canonical JSON array of an event's fields, `prev_hash`
    included.

    The array holds the first twenty HASHED_FIELDS in order (alphabetical): ids as lowercase
    UUID strings, `recorded_at` as RFC 3339 UTC with microseconds and Z, lists as JSON arrays,
    items separated by ", ", non-ASCII characters as themselves. When `family_ids` is not
    empty, it follows as one more element, the JSON array of its strings as stored (sorted,
    lowercase); when empty it is left out, so the bytes of an event without it are those
    hashed before the field existed and older chains still verify.
    """
    return hashlib.sha256(_encode(_canonical_values(values)).encode()).hexdigest()


def exported_event_hash(document: dict) -> str:
    """The `hash` an event as the auditors' API shows it (a line of `/api/v1/audit/export`, an
    item of `/api/v1/audit/events`) must carry: its nested `actor`, `resource` and `request`
    put back as the columns they are, then `event_hash`. Each line's `prev_hash` is the
    `hash` of the line of `seq` one lower."""
    actor, resource, request = document["actor"], document["resource"], document["request"]
    return event_hash({
        **document,
        "organization_id": actor["organization_id"], "client_id": actor["client_id"],
        "token_id": actor["token_id"],
        "resource_type": resource["type"], "resource_id": resource["id"],
        "request_id": request["id"], "request_method": request["method"],
        "request_path": request["path"], "request_ip": request["ip"],
        "recorded_at": datetime.fromisoformat(document["recorded_at"]),
    })


class ChainCannotGoOn(Exception):
    """Events cannot be chained: a row in their way (one holding a key the next event needs,
    written past the service) or an event the chain refuses (a row written past the service,
    or a fault of the code). On PostgreSQL the sealing raises it (readers then read the
    chain as it stands, verification names it, no checkpoint is made); on SQLite the commit
    that chains a request's events (the request is answered 503). Its text says which, for
    the log and for verification; never family data (keys, constraints and error kinds)."""


def exported_chain_break(documents) -> tuple[int | None, str] | None:
    """Where an export stops holding as a chain, as (seq, reason); None when it holds.

    `documents`: its lines, parsed, in order. Each must hash to its `hash` (see
    `exported_event_hash`), follow the line before it by one `seq`, and name that line's
    `hash` as its `prev_hash`: a line changed, dropped, inserted or moved breaks it (an export
    has no gap: audit.service.export_events). The first line's `prev_hash` is held to nothing
    here: compare it with the `hash` of the event before it. An empty export holds nothing.
    """
    previous = None
    for number, document in enumerate(documents, start=1):
        expected = previous["seq"] + 1 if previous is not None else None
        try:
            seq, recomputed = document["seq"], exported_event_hash(document)
            stored, prev_hash = document["hash"], document["prev_hash"]
        except (KeyError, TypeError, ValueError, AttributeError):
            return expected, f"line {number} is not an exported event"
        if previous is not None:
            if seq != expected:
                return expected, (f"the line after event {previous['seq']} is event {seq}, "
                                  f"not event {expected}")
            if prev_hash != previous["hash"]:
                return seq, f"event {seq} does not chain to event {previous['seq']}"
        if recomputed != stored:
            return seq, f"event {seq} does not hash to its stored hash"
        previous = document
    return None


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


def _checked_rows(connection, lower: int, upper: int):
    """Rows of events lower..upper to check, in seq order, as (seq, previous seq, prev_hash,
    previous hash, stored hash, recomputed hash); the previous ones are None on the first row.

    On PostgreSQL the database recomputes with the same function its trigger chained with, and
    returns only the rows that need a look: the first, the last, and any that do not chain.
    """
    if connection.dialect.name == "postgresql":
        # The hash computed beneath the window functions, in a subquery they cannot flatten
        # (OFFSET 0): the window then carries four narrow columns per row, not all twenty-two.
        hashed = sa.select(
            AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash,
            sa.func.audit_event_hash(*(getattr(AuditEvent, f) for f in HASHED_FIELDS))
            .label("recomputed"),
        ).where(AuditEvent.seq.between(lower, upper)).order_by(AuditEvent.seq).offset(0) \
            .subquery()
        rows = sa.select(
            hashed.c.seq,
            sa.func.lag(hashed.c.seq).over(order_by=hashed.c.seq).label("previous_seq"),
            hashed.c.prev_hash,
            sa.func.lag(hashed.c.hash).over(order_by=hashed.c.seq).label("previous_hash"),
            hashed.c.hash,
            hashed.c.recomputed,
            sa.func.lead(hashed.c.seq).over(order_by=hashed.c.seq).label("next_seq"),
        ).subquery()
        suspicious = sa.or_(rows.c.previous_seq.is_(None), rows.c.next_seq.is_(None),
                            rows.c.seq != rows.c.previous_seq + 1,
                            rows.c.prev_hash != rows.c.previous_hash,
                            rows.c.hash != rows.c.recomputed)
        yield from connection.execute(
            sa.select(rows.c.seq, rows.c.previous_seq, rows.c.prev_hash, rows.c.previous_hash,
                      rows.c.hash, rows.c.recomputed).where(suspicious).order_by(rows.c.seq))
        return
    previous_seq = previous_hash = None
    # Read as stored: SQLite keeps whatever is written into a column (a time that is no time,
    # categories that are not JSON), and a value of another type is tampering to report at
    # its seq, not an exception. Converted here, which is also faster than the column types.
    # The driver's own cursor: iterated in C, a row costs a third of what a Result's does.
    rows = connection.connection.driver_connection.execute(
        _SQLITE_EVENTS, (lower, upper))
    for row in rows:
        try:
            recomputed = _sqlite_hash(row)
        except UNREADABLE:
            recomputed = Unreadable(row[_SEQ], _unreadable_column(row))
        yield row[_SEQ], previous_seq, row[_PREV], previous_hash, row[-1], recomputed
        previous_seq, previous_hash = row[_SEQ], row[-1]


#: An event's hashed fields and its hash, as SQLite stores them, in HASHED_FIELDS order.
_SQLITE_EVENTS = (f"SELECT {', '.join(HASHED_FIELDS)}, hash FROM audit_events "  # noqa: S608
                  "WHERE seq BETWEEN ? AND ? ORDER BY seq")
#: What converting a stored value of another type raises (a checkpoint's too).
UNREADABLE = (ValueError, TypeError, AttributeError, OverflowError)
_HEX = "0123456789abcdef"
_scan_json = json.JSONDecoder().scan_once  # the C scanner, without decode()'s regex


def _sqlite_json(value):
    """A stored JSON document (as SQLAlchemy writes it: no surrounding spaces)."""
    if value is None:
        return None
    if value == "[]":
        return []
    try:
        document, end = _scan_json(value, 0)
    except StopIteration:  # the scanner's word for "no JSON here"
        raise ValueError("not JSON") from None
    if end != len(value):
        raise ValueError("more than one JSON document")
    return document


class Unreadable(str):
    """The recomputed "hash" of an event holding a value that is not of its column's type:
    equal to no stored hash, and saying why."""

    def __new__(cls, seq, column: str):
        return super().__new__(cls, f"event {seq} holds a {column} that is not of its "
                                    "column's type")


def _sqlite_uuid(value):
    """A stored UUID (32 hex digits) as its canonical text."""
    if value is None:
        return None
    if len(value) == 32 and not value.strip(_HEX):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(uuid.UUID(value))  # another spelling SQLAlchemy reads too


def _sqlite_time(value):
    """A stored time (SQLAlchemy's `YYYY-MM-DD HH:MM:SS.ffffff`, UTC) in RFC 3339."""
    if value is None:
        return None
    if (len(value) == 26 and value[10] == " " and value[19] == "."
            and value[4] == value[7] == "-" and value[13] == value[16] == ":"):
        return f"{value[:10]}T{value[11:]}Z"
    return rfc3339(_sqlite_time_parser()(value).replace(tzinfo=UTC))


@functools.cache
def _sqlite_time_parser():
    """How SQLAlchemy reads a time SQLite stores (any spelling it accepts)."""
    dialect = sqlite.dialect()
    return sa.DateTime().dialect_impl(dialect).result_processor(dialect, None)


def _sqlite_strings(value) -> list:
    return [str(v) for v in _sqlite_json(value) or ()]


def _sqlite_hash(row) -> str:
    """`event_hash` of a raw SQLite row of _SQLITE_EVENTS. Raises one of UNREADABLE for a
    value that is not of its column's type."""
    (action, categories, client_id, consent_ids, family_id, id_, organization_id, outcome,
     prev_hash, purpose, reason, recorded_at, request_id, request_ip, request_method,
     request_path, resource_id, resource_type, seq, token_id, family_ids, _) = row
    canonical = [
        action, _sqlite_strings(categories), client_id, _sqlite_strings(consent_ids),
        _sqlite_uuid(family_id), _sqlite_uuid(id_), _sqlite_uuid(organization_id), outcome,
        prev_hash, purpose, reason, _sqlite_time(recorded_at), request_id, request_ip,
        request_method, request_path, resource_id, resource_type, seq,
        _sqlite_uuid(token_id),
    ]
    family_ids = _sqlite_json(family_ids)
    if family_ids is not None and family_ids != []:  # as _canonical_values
        canonical.append(family_ids)
    return hashlib.sha256(_encode(canonical).encode()).hexdigest()


#: How each hashed column of a raw SQLite row is read (plain text: as it is).
_SQLITE_READERS = {"categories": _sqlite_strings, "consent_ids": _sqlite_strings,
                   "family_ids": _sqlite_json, "recorded_at": _sqlite_time,
                   **dict.fromkeys(("family_id", "id", "organization_id", "token_id"),
                                   _sqlite_uuid)}


def _unreadable_column(row) -> str:
    """The first column of a raw row whose value cannot be read as its type (or hashed)."""
    for name, value in zip(HASHED_FIELDS, row, strict=False):
        try:
            _encode([_SQLITE_READERS.get(name, _as_is)(value)])
        except UNREADABLE:
            return name
    return "value"


def _as_is(value):
    return value


def verify(session, from_seq: int | None = None, to_seq: int | None = None) -> Verdict:
    """Recompute the chain over [from_seq, to_seq] (default: the whole log) and compare.

    A range that starts after 1 trusts the stored hash of the event just before it. The range
    is checked in batches of VERIFY_BATCH events; on PostgreSQL a range of several batches is
    checked on as many connections at once as the machine has cores (see _check_batches).
    """
    # The head and the newest stored seq from one snapshot: events that writers commit while
    # this runs come after both, and are neither checked nor taken for an insertion.
    head = session.execute(
        sa.select(AuditChainHead.seq, AuditChainHead.hash,
                  sa.select(sa.func.max(AuditEvent.seq)).scalar_subquery().label("newest"),
                  sa.select(sa.func.min(AuditEvent.seq)).scalar_subquery().label("oldest"))
        .where(AuditChainHead.id == 1)).one()
    head_doc = {"seq": head.seq, "hash": head.hash}
    start = from_seq or 1
    end = head.seq if to_seq is None else min(to_seq, head.seq)
    whole_tail = to_seq is None or to_seq >= head.seq

    in_range = max(end - start + 1, 0)

    def bad(seq, reason, checked=None):
        # The events before the first bad one, at most those in the range (a listed family
        # found beyond the head is past them all).
        return Verdict(False, min(max(seq - start, 0), in_range) if checked is None else checked,
                       seq, reason, head_doc)

    if start == 1:
        prev = GENESIS_HASH
        if head.oldest is not None and head.oldest < 1:
            # Shown by the family filter and the accounting, though no chain holds it.
            return bad(head.oldest, f"event {head.oldest} lies before the first event "
                                    "(seq starts at 1)")
    else:
        prev = session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == start - 1))
        if prev is None:
            return bad(start - 1, f"event {start - 1} is missing")

    # The families listed beside each event are checked over the same batches; the first's
    # also reach below the chain, and the last's beyond the head, when the range is the log's.
    bounds = [(lo, min(lo + VERIFY_BATCH - 1, end))
              for lo in range(start, end + 1, VERIFY_BATCH)] or [(start, end)]
    batches = [Batch(lo, hi, None if index == 0 and start == 1 else lo,
                     None if index == len(bounds) - 1 and whole_tail else hi)
               for index, (lo, hi) in enumerate(bounds)]
    problem, last_hash = _check_batches(session, batches, prev)
    if problem is not None:
        return bad(*problem)
    if whole_tail:
        if head.seq and last_hash != head.hash:
            return bad(head.seq, "the newest event does not match the chain head", in_range)
        if head.newest is not None and head.newest > head.seq:
            beyond = session.scalar(sa.select(sa.func.min(AuditEvent.seq))
                                    .where(AuditEvent.seq > head.seq))
            return bad(beyond, f"event {beyond} lies beyond the chain head", in_range)
    return Verdict(True, in_range, None, None, head_doc)


@dataclass
class Batch:
    """Events lo..hi to check, and the seqs whose listed families to check beside them
    (listed_from..listed_to, None: unbounded on that side)."""
    lo: int
    hi: int
    listed_from: int | None
    listed_to: int | None


#: Connections a verification of several batches uses at once on PostgreSQL: each batch's
#: check is one backend's CPU, and the machine's cores are what makes two faster than one.
VERIFY_CONNECTIONS = max(2, min(4, os.cpu_count() or 1))


def _check_batches(session, batches: list[Batch], prev: str):
    """The first problem over the batches in order, as (seq, reason), or None; and the last
    batch's last hash.

    On PostgreSQL, several batches are checked at once, each on a connection of its own:
    events up to the head are committed and never change, so any snapshot taken after the head
    was read holds them as the session's does. (A test's uncommitted events are seen by its
    session only: it keeps under one batch.)
    """
    connection = session.connection()
    if len(batches) == 1 or connection.dialect.name != "postgresql":
        for batch in batches:
            problem, prev = _check_batch(connection, batch, prev)
            if problem is not None:
                return problem, None
        return None, prev
    engine = connection.engine
    # The session only reads: its transaction ends here, or it would sit idle while the
    # batches are checked, and past idle_in_transaction_session_timeout (the statement
    # timeout's, a few million events' checking) PostgreSQL would end its connection.
    session.rollback()

    def check(index: int):
        with engine.connect() as own:
            return _check_batch(own, batches[index], prev if index == 0 else None)

    with ThreadPoolExecutor(max_workers=min(len(batches), VERIFY_CONNECTIONS)) as pool:
        futures = [pool.submit(check, index) for index in range(len(batches))]
        try:
            for future in futures:
                problem, last_hash = future.result()
                if problem is not None:
                    return problem, None
        finally:
            for future in futures:  # those not started yet: the answer is known
                future.cancel()
    return None, last_hash


def _check_batch(connection, batch: Batch, prev: str | None):
    """The first problem in one batch, as (seq, reason), or None; and its last event's hash.

    `prev` is the hash its first event must chain to; None reads the one stored before it.
    """
    if prev is None:
        prev = connection.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == batch.lo - 1))
        if prev is None:
            return (batch.lo - 1, f"event {batch.lo - 1} is missing"), None
    problem, prev = _chain_break(connection, batch, prev)
    misfiled = _misfiled_family(connection, batch.listed_from, batch.listed_to)
    if misfiled is not None and (problem is None or misfiled < problem[0]):
        problem = (misfiled, f"the families listed for event {misfiled} "
                             "(audit_listed_families) are not those it names in family_ids: "
                             "the family filter and the accounting read that list")
    return problem, prev


def _chain_break(connection, batch: Batch, prev: str):
    """The first event of the batch that is missing, does not chain to the one before it, or
    does not hash to its stored hash, as (seq, reason), or None when all do; and the hash of
    the last event that does."""
    last_seq = None
    for seq, previous_seq, prev_hash, previous_hash, stored, recomputed in \
            _checked_rows(connection, batch.lo, batch.hi):
        if previous_seq is None:  # the batch's first event: chain it to what came before
            previous_seq, previous_hash = batch.lo - 1, prev
        if seq != previous_seq + 1:
            return (previous_seq + 1, f"event {previous_seq + 1} is missing"), prev
        if prev_hash != previous_hash:
            return (seq, f"prev_hash of event {seq} is not the hash of event {seq - 1}"), prev
        if recomputed != stored:
            return (seq, recomputed if isinstance(recomputed, Unreadable)
                    else f"event {seq} does not hash to its stored hash"), prev
        last_seq, prev = seq, stored
    if batch.hi >= batch.lo and last_seq != batch.hi:
        missing = batch.lo if last_seq is None else last_seq + 1
        return (missing, f"event {missing} is missing"), prev
    return None, prev


def _misfiled_family(connection, lower: int | None, upper: int | None) -> int | None:
    """The first seq in [lower, upper] (None: unbounded) whose listed families, the index the
    family filter and the accounting of disclosures read, differ from the `family_ids` its
    chained event names; None when they agree. Run once the chain verified: `family_ids` is
    then as hashed.

    On PostgreSQL, each event's listed families are gathered into the JSON array the recorder
    writes (its ids' strings, sorted: uuid order is their text's order) side by side with the
    `family_ids` it names, one group per event (where two EXCEPTs each sorted both sides, on
    disk: a million events took 6.6 s). Anything else in `family_ids` (another order, case or
    type) is reported, not a crash: the recorder writes none."""
    listed = AuditListedFamily.__table__
    events = AuditEvent.__table__
    if connection.dialect.name == "postgresql":
        return connection.scalar(_misfiled_postgresql(lower is not None, upper is not None),
                                 {"lower": lower, "upper": upper})
    # SQLite keeps a UUID as 32 hex digits (see migration 0006)
    named = sa.func.json_each(events.c.family_ids).table_valued("value")
    family = listed.c.family_id
    named_family = sa.func.replace(sa.func.lower(named.c.value), "-", "")
    nonempty = events.c.family_ids != "[]"
    in_listed = [listed.c.seq >= lower] if lower is not None else []
    in_events = [events.c.seq >= lower] if lower is not None else []
    if upper is not None:
        in_listed.append(listed.c.seq <= upper)
        in_events.append(events.c.seq <= upper)
    of_listed = sa.select(listed.c.seq, family.label("family")).where(*in_listed)
    of_events = (sa.select(events.c.seq, named_family.label("family"))
                 .select_from(events).join(named, sa.true()).where(nonempty, *in_events))
    differ = sa.union_all(sa.except_(of_listed, of_events).subquery().select(),
                          sa.except_(of_events, of_listed).subquery().select()).subquery()
    return connection.scalar(sa.select(sa.func.min(differ.c.seq)))


@functools.cache
def _misfiled_postgresql(bounded_below: bool, bounded_above: bool) -> sa.TextClause:
    """The PostgreSQL query of `_misfiled_family`, with only the bounds it is given: a bound
    tested for NULL in the statement would leave a generic plan scanning the whole log."""
    in_range = " AND ".join(test for test, given in (("seq >= :lower", bounded_below),
                                                     ("seq <= :upper", bounded_above))
                            if given) or "true"
    return sa.text(f"""
        WITH listed AS (
            SELECT seq, jsonb_agg(family_id::text ORDER BY family_id) AS families
            FROM audit_listed_families WHERE {in_range} GROUP BY seq),
        named AS (
            SELECT seq, family_ids AS families FROM audit_events
            WHERE family_ids <> '[]'::jsonb AND {in_range})
        SELECT min(coalesce(listed.seq, named.seq))
        FROM listed FULL JOIN named ON listed.seq = named.seq
        WHERE listed.families IS DISTINCT FROM named.families""")  # noqa: S608 (constants)
