"""The auditors' queries: events by filter, one event, export, verification, checkpoints."""

import contextlib
import errno
from datetime import timedelta

import sqlalchemy as sa

from audit import checkpoints
from audit.chain import ChainCannotGoOn, chain_head, verify
from audit.models import MAX_SEQ, AuditChainHead, AuditEvent, AuditListedFamily
from audit.recorder import record
from audit.schemas import AuditEventSchema
from audit.sealer import seal_committed
from core.db import begin_read_only, db
from core.errors import Problem, log_without_message, validation_problem
from core.pagination import Page, decode_cursor, keyset_page

EXPORT_BATCH = 1000
_FILTERS = ("organization_id", "client_id", "action", "outcome", "resource_type",
            "resource_id")


#: Events on the chain: up to its head. A row past the head was written past the service
#: (verification names it), and is not served as an event of the trail.
_CHAINED = AuditEvent.seq <= (sa.select(AuditChainHead.seq).where(AuditChainHead.id == 1)
                              .scalar_subquery())


def _seal_for_reading(**options) -> None:
    """Seal what waits before a read; a chain that cannot go on is read as it stands (its
    cause logged; verification names it): auditors need the trail around it most of all."""
    with contextlib.suppress(ChainCannotGoOn):
        seal_committed(**options)


def _events_page(conditions: list, *, family_id=None, kind: str, cursor: str | None,
                 limit: int, since=None, until=None) -> Page:
    """A keyset page, newest first, of the events meeting `conditions` and, given
    `family_id`, naming that family in `family_id` or in `family_ids`; `since` and `until`:
    the time range `conditions` hold, read along `seq` from near its end."""
    _seal_for_reading(in_transaction=True)  # every event committed before this request is on it
    conditions = [*conditions, _CHAINED, *_seq_bounds(since, until)]  # as sealed just now
    stmt = sa.select(AuditEvent).where(*conditions)
    if family_id is not None:
        stmt = stmt.where(AuditEvent.seq.in_(
            _naming_family(family_id, conditions, _seq_before(kind, cursor), limit + 1)))
    return keyset_page(stmt, kind=kind, order=[AuditEvent.seq], cursor=cursor, limit=limit,
                       descending=True, encode=lambda e: [e.seq],
                       decode=lambda values: [int(values[0])])


def _seq_before(kind: str, cursor: str | None) -> int | None:
    """The seq a cursor continues before; None for the first page (or a cursor keyset_page
    will refuse)."""
    values = decode_cursor(kind, cursor, 1)
    try:
        return None if values is None else int(values[0])
    except (TypeError, ValueError):
        return None


def _naming_family(family_id, conditions: list, before: int | None, limit: int):
    """The seqs of at most `limit` newest events before `before` naming the family in each
    of its two places, meeting `conditions`.

    Two keyset range scans, one on (family_id, seq) of the events and one on the listed
    families' (family_id, seq), so a page costs the same at any depth. An OR of the two
    would be neither: no single index orders both, and the database would read every event
    of the family to sort them.
    """
    named = (sa.select(AuditEvent.seq)
             .where(AuditEvent.family_id == family_id, *conditions)
             .order_by(AuditEvent.seq.desc()).limit(limit))
    listed = (sa.select(AuditListedFamily.seq)
              .where(AuditListedFamily.family_id == family_id)
              .order_by(AuditListedFamily.seq.desc()).limit(limit))
    if conditions:  # else the listed families alone answer, without a visit to each event
        listed = (listed.join(AuditEvent, AuditEvent.seq == AuditListedFamily.seq)
                  .where(*conditions))
    if before is not None:
        named = named.where(AuditEvent.seq < before)
        listed = listed.where(AuditListedFamily.seq < before)
    # Each in a subquery: SQLite takes no ORDER BY or LIMIT on a member of a UNION itself.
    named, listed = named.subquery(), listed.subquery()
    return sa.union_all(sa.select(named.c.seq), sa.select(listed.c.seq))


#: Far longer than a request's events wait to commit (30 s at most, `audit.recorder.
#: COMMIT_WINDOW`, or they never do) or an operator command's batch: an event reaches the
#: chain within this of its `recorded_at`, the head's measured disorder aside.
_LONGEST_TRANSACTION = timedelta(hours=1)


def _seq_bounds(since=None, until=None) -> list:
    """Conditions on `seq` that hold for every event recorded in [since, until), found with
    one probe of the `recorded_at` index each, so a time range is read along `seq` from near
    its first event, not from the start (or the end) of the whole log.

    `seq` follows commit order, not `recorded_at`: no chained event's `recorded_at` falls
    more than the head's `time_disorder_us` before that of one chained earlier (a long
    transaction, a host's clock that is off), and `_LONGEST_TRANSACTION` is allowed for
    besides. So an event recorded that long before `since` was chained before any event
    recorded from `since` on, and one recorded that long after `until` after any recorded
    before `until`."""
    bounds = []
    if since is None and until is None:
        return bounds
    disorder = db.session.scalar(sa.select(AuditChainHead.time_disorder_us)
                                 .where(AuditChainHead.id == 1)) or 0
    margin = max(_LONGEST_TRANSACTION, timedelta(microseconds=disorder))
    if since is not None:
        before = db.session.scalar(
            sa.select(AuditEvent.seq).where(AuditEvent.recorded_at < since - margin)
            .order_by(AuditEvent.recorded_at.desc()).limit(1))
        if before is not None:
            bounds.append(AuditEvent.seq > before)
    if until is not None:
        after = db.session.scalar(
            sa.select(AuditEvent.seq).where(AuditEvent.recorded_at >= until + margin)
            .order_by(AuditEvent.recorded_at).limit(1))
        if after is not None:
            bounds.append(AuditEvent.seq < after)
    return bounds


def search_events(actor, *, limit: int, cursor: str | None = None, since=None, until=None,
                  family_id=None, **filters) -> Page:
    """One page of events matching every given filter, newest first; the search is recorded.

    `family_id` finds the events naming the family in `family_id` or in `family_ids`.
    """
    conditions = [getattr(AuditEvent, name) == filters[name] for name in _FILTERS
                  if filters.get(name) is not None]
    if since is not None:
        conditions.append(AuditEvent.recorded_at >= since)
    if until is not None:
        conditions.append(AuditEvent.recorded_at < until)
    page = _events_page(conditions, family_id=family_id, kind="audit_events", cursor=cursor,
                        limit=limit, since=since, until=until)
    # A search of one family's trail is a look at that family's accounting: on its trail too.
    record(action="search", outcome="permit", reason="audit_read", resource_type="audit_event",
           family_id=family_id, actor=actor)
    return page


def get_event(actor, seq: int) -> AuditEvent:
    """The event at `seq`. Raises Problem 404 when the log has none there."""
    _seal_for_reading(in_transaction=True)
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == seq, _CHAINED)) \
        if seq <= MAX_SEQ else None
    if event is None:
        raise Problem("not-found", f"The log has no event {seq}")
    record(action="read", outcome="permit", reason="audit_read", resource_type="audit_event",
           resource_id=seq, family_id=event.family_id, family_ids=event.family_ids, actor=actor)
    return event


def export_events(actor, *, since, until):
    """Record the export, then return a generator of NDJSON lines, oldest first.

    The generator reads in keyset batches so memory stays flat at any size.
    """
    _seal_for_reading()
    record(action="export", outcome="permit", reason="audit_read", resource_type="audit_event",
           actor=actor)
    schema = AuditEventSchema()

    def lines():
        try:
            yield from batches()
        except Exception as error:
            # Cut short after its 200 (the database went away mid-stream): its type and place
            # to the log, never its message (the server would log both, and the source). The
            # connection then drops without the stream's last chunk, so the client sees the
            # export incomplete, where a clean end would pass a cut export off as whole.
            log_without_message("export cut short", error)
            raise ConnectionResetError(errno.ECONNRESET, "export cut short") from None

    def batches():
        from flask import json

        # The request's transaction ended with the export's event. Each batch is read in a
        # short transaction of its own, ended before its lines are sent: a client may take
        # minutes to read the stream, and a transaction left idle that long is ended by the
        # database (idle_in_transaction_session_timeout), cutting the export short. Events
        # never change, so batches read apart are the log as one read would see it.
        begin_read_only()
        in_range = (sa.select(AuditEvent.seq)
                    .where(AuditEvent.recorded_at >= since, AuditEvent.recorded_at < until,
                           _CHAINED, *_seq_bounds(since, until)).limit(1))
        first = db.session.scalar(in_range.order_by(AuditEvent.seq))
        last = db.session.scalar(in_range.order_by(AuditEvent.seq.desc()))
        db.session.rollback()
        if first is None:
            return
        # The stretch of the chain from the first event recorded in the range to the last:
        # gapless, so it can be checked away from the service line by line. An event chained
        # inside it but recorded outside the range (its request committed late) is in it too.
        after = first - 1
        while True:
            begin_read_only()
            batch = [schema.dump(event) for event in db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.seq > after, AuditEvent.seq <= last)
                .order_by(AuditEvent.seq).limit(EXPORT_BATCH))]
            db.session.rollback()
            db.session.expunge_all()
            for document in batch:
                yield json.dumps(document) + "\n"
            if len(batch) < EXPORT_BATCH:
                return
            after = batch[-1]["seq"]

    return lines()


def verify_log(*, from_seq: int | None = None, to_seq: int | None = None) -> dict:
    """Recompute the chain over the log or a range of it, and check every checkpoint stored
    in the range (the service's signature, and the log still hashing to it).

    Raises Problem 422 when `from_seq` or `to_seq` lies past the newest event: a range that
    names events the log does not hold is not reported valid (its tail may have been cut).
    """
    try:
        seal_committed()
        blocked = None
    except ChainCannotGoOn as error:
        blocked = str(error)
    head = chain_head(db.session)
    past_the_end = {name: [f"The log ends at event {head.seq}"]
                    for name, seq, least in (("from_seq", from_seq, max(head.seq, 1)),
                                             ("to_seq", to_seq, head.seq))
                    if seq is not None and seq > least}
    if past_the_end:
        raise validation_problem(past_the_end, "The log does not reach that far")
    verdict = verify(db.session, from_seq, to_seq).as_dict()
    if verdict["valid"]:
        # A careful forger re-hashes everything after what it rewrote: the chain holds, a
        # checkpoint signed before does not.
        broken = checkpoints.broken_checkpoint(db.session, from_seq, to_seq)
        if broken is not None:
            verdict.update(valid=False, first_bad_seq=broken[0], reason=broken[1])
    if verdict["valid"] and blocked and (to_seq is None or to_seq >= head.seq):
        # Sound as far as it goes, but it goes no further: committed events wait outside it.
        verdict.update(valid=False, first_bad_seq=head.seq + 1,
                       reason=f"the events waiting to be chained after event {head.seq} "
                              f"cannot be: {blocked}")
    return verdict


def latest_checkpoint():
    """The newest checkpoint. Raises Problem 404 before the first is made."""
    checkpoint = checkpoints.latest_checkpoint(db.session)
    if checkpoint is None:
        raise Problem("not-found", "No checkpoint has been made yet")
    return checkpoint


def verify_checkpoint(checkpoint: dict) -> dict:
    """Whether a kept checkpoint is the service's and today's log still extends it.

    Raises Problem 422 when its signature does not verify or the key is not the service's.
    """
    if not checkpoints.signature_is_valid(checkpoint):
        raise Problem("validation-error", "The checkpoint's signature does not verify",
                      errors={"signature": ["Does not verify under public_key"]})
    if not checkpoints.is_service_key(checkpoint["public_key"]):
        raise Problem("validation-error", "The checkpoint was not signed by this service",
                      errors={"public_key": ["Not a key of this service"]})
    _seal_for_reading()
    return checkpoints.extends(db.session, checkpoint)


#: Reasons of a permitted access that rested on a consent: a disclosure outside the custodian.
DISCLOSURE_REASONS = ("consent", "partial_consent")
#: Actions that show information (a `decide` only answers whether it could be shown).
DISCLOSING_ACTIONS = ("read", "search", "export", "transition")


def disclosures(*, family_id, custodian_organization_id, limit: int,
                cursor: str | None = None) -> Page:
    """Every permitted access to the family's information by an organization other than its
    custodian that rested on a consent, newest first: who, when, which categories, for what
    purpose, under which consents. An event that disclosed several families (a page of a
    list) counts for each of them. The custodian reading what another organization wrote
    about its family (a provider's feedback) saw it under consent, but nothing left the
    custodian: it is not in the accounting."""
    conditions = [AuditEvent.outcome == "permit", AuditEvent.reason.in_(DISCLOSURE_REASONS),
                  AuditEvent.action.in_(DISCLOSING_ACTIONS),
                  AuditEvent.organization_id != custodian_organization_id]
    return _events_page(conditions, family_id=family_id, kind="disclosures", cursor=cursor,
                        limit=limit)
