"""Sending, reading, moving and closing referrals, their timeline and their notes.

Who may see what of a referral is decided by `consent.policy`; this module applies it.
"""

import uuid
from datetime import date, datetime, timedelta
from math import ceil

import sqlalchemy as sa
from sqlalchemy import orm

import audit
from consent import policy
from consent.categories import REFERRAL_SHOWN_CATEGORIES
from consent.service import consent_revoked
from core.concurrency import Preconditions, check_preconditions
from core.db import db
from core.errors import Problem, validation_problem
from core.pagination import Page, keyset_page, newest_first
from core.time import local_date, now
from core.web import concerns_family
from families.models import Family
from families.service import family_document, get_family, share_families
from organizations.models import Organization
from referrals.models import (
    ACTIVE_STATUSES,
    CANCELLATION_REASONS,
    HOLD_REASONS,
    NOTE_CATEGORIES,
    OPEN_STATUSES,
    PAUSING_HOLD_REASONS,
    REJECTION_REASONS,
    Referral,
    ReferralEvent,
    ReferralNote,
)

REFERRAL_DAYS = timedelta(days=7)
TIMELINE_DAYS = timedelta(days=45)

#: The contract's table: status -> (statuses it may come from, sides that may set it).
#: `in_progress` -> `in_progress` records a new business status.
TRANSITIONS = {
    "requested": ({"draft"}, {"sender"}),
    "received": ({"requested"}, {"receiver"}),
    "accepted": ({"requested", "received"}, {"receiver"}),
    "rejected": ({"requested", "received"}, {"receiver"}),
    "in_progress": ({"accepted", "on_hold", "in_progress"}, {"receiver"}),
    # on_hold -> on_hold relabels a hold: a provider documenting its attempts to get consent
    # again after a consent ended pauses the Part C clock from then.
    "on_hold": ({"accepted", "in_progress", "on_hold"}, {"receiver"}),
    "completed": ({"accepted", "in_progress"}, {"receiver"}),
    "cancelled": (set(OPEN_STATUSES), {"sender", "receiver"}),
}
#: Where the service may have held a referral the receiver had not yet decided on (its consent
#: ended): leaving that hold takes the receiver back to its decision, not past it.
_UNDECIDED = frozenset({"requested", "received"})
_DECISIONS = frozenset({"accepted", "rejected"})
#: The reason codes each status takes; a status not named here takes none.
_REASONS = {
    "rejected": REJECTION_REASONS,
    "cancelled": CANCELLATION_REASONS,
    "on_hold": tuple(r for r in HOLD_REASONS if r != "consent_ended"),
}
#: Statuses in which the Part C 45-day clock runs: from delivery until the referral closes.
_TIMELINE_STATUSES = ("requested", "received", "accepted", "in_progress", "on_hold")


def _not_found(referral_id, action: str, **context) -> Problem:
    return Problem("not-found", "No referral with this id is visible to this organization",
                   audit={"action": action, "resource_type": "referral",
                          "resource_id": referral_id, "reason": "not_found", **context})


# -- views ----------------------------------------------------------------------------------

class _Access:
    """A party's access to one referral at one instant: its side and the engine's viewer."""

    def __init__(self, actor, referral: Referral, family: Family, side: str, at: datetime,
                 viewer: policy.Viewer | None = None):
        self.actor = actor
        self.referral = referral
        self.family = family
        self.side = side
        self.at = at
        self.viewer = viewer or policy.Viewer(actor_organization_id=actor.organization_id,
                                              family=family, at=at)

    def authored(self, category: str, author_organization_id, purpose="care_coordination"):
        return policy.decide_authored(self.viewer, purpose=purpose, category=category,
                                       author_organization_id=author_organization_id)


class _Seen:
    """What a rendering showed: every decision taken (for `redacted`), and the disclosures
    among them, those resting on a consent (for the audit trail)."""

    def __init__(self):
        self.decisions: list[policy.Decision] = []

    def add(self, decision: policy.Decision) -> policy.Decision:
        self.decisions.append(decision)
        return decision

    @property
    def withheld(self) -> list[str]:
        """Every category some decision withheld: one author's feedback shown does not make
        another's of the same category shown."""
        return sorted(set().union(*(d.withheld for d in self.decisions)))

    def disclosures(self) -> dict[str, policy.Decision]:
        """The disclosures, combined by purpose: each purpose's categories and consents (the
        accounting of disclosures names one purpose for each)."""
        return policy.by_purpose(self.decisions)


def _part_c(referral: Referral, timeline_seen: bool, identification_seen: bool) -> dict | None:
    """The Part C clocks the viewer may see. That a referral is Part C's is the receiver's to
    know (its 45 days run from delivery); when the sender identified the concern, and so its
    own 7 days, is `referral_reason` it wrote, seen with the reasons."""
    if referral.part_c_identified_on is None:
        return None
    part_c = {"received_on": local_date(referral.received_at) if referral.received_at
              else None}
    if identification_seen:
        part_c |= {"identified_on": referral.part_c_identified_on,
                   "referral_due_by": referral.referral_due_by}
    if timeline_seen:  # else absent: its pauses tell of the receiver's work with the family
        part_c |= {"timeline_due_by": referral.timeline_due_by,
                   "timeline_paused_since": referral.timeline_paused_since}
    return part_c


def _document(access: _Access, seen: _Seen, consents_naming: set[str] | None = None) -> dict:
    """The referral as this party may see it now; each decision lands in `seen`.
    `consents_naming`: the consents naming the caller among the referral's, looked up already
    (a list page's, at once)."""
    referral, family = access.referral, access.family
    of_family, of_sender = (seen.add(d) for d in policy.referral_shared_decisions(
        access.viewer, sender_organization_id=referral.from_organization_id,
        shared_categories=REFERRAL_SHOWN_CATEGORIES.intersection(referral.shared_categories)))
    document = {
        "id": referral.id,
        "family_id": referral.family_id,
        "from_organization_id": referral.from_organization_id,
        "to_organization_id": referral.to_organization_id,
        "status": referral.status,
    }
    # The receiver's feedback, and its Part C clock once it has moved the referral (its
    # pauses move the date), are `service_status` it authors; asked about only once there is
    # some. Before that the clock is the day of delivery + 45, which the sender knows (or
    # null: not sent, or not Part C's): both sides see it.
    clock_kept = referral.received_at is not None and referral.timeline_due_by is not None
    timeline_seen = not clock_kept
    if referral.business_status is not None or clock_kept:
        feedback = seen.add(access.authored("service_status", referral.to_organization_id))
        timeline_seen = bool(feedback.permitted)
        if feedback.permitted:
            document["business_status"] = referral.business_status
    if referral.status_reason is not None or referral.outcome is not None:
        reason = seen.add(access.authored("service_status",
                                          referral.status_set_by_organization_id))
        if reason.permitted:
            document["status_reason"] = referral.status_reason
            document["outcome"] = referral.outcome
    reasons = of_sender  # the receiver sees the reasons only when shared and permitted
    if access.side == "sender" and "referral_reason" not in referral.shared_categories:
        # The sender wrote them: their author sees them, whatever it shared.
        reasons = seen.add(access.authored("referral_reason", referral.from_organization_id,
                                           purpose="referral"))
    reasons_seen = "referral_reason" in reasons.permitted
    if reasons_seen:
        document["reasons"] = referral.reasons
        document["reason_detail"] = referral.reason_detail
    family_view = family_document(family, of_family.permitted)
    family_view["redacted"] = of_family.withheld
    return document | {
        "urgency": referral.urgency,
        "shared_categories": referral.shared_categories,
        # Those the viewer may know exist: a forwarded referral rests on a consent between
        # the custodian and the other side too, which names this side not.
        "consent_ids": policy.consents_known_to(
            access.viewer, referral.consent_ids,
            relied_on=[c for d in seen.decisions for c in d.consent_ids],
            naming=consents_naming),
        "family": family_view,
        "part_c": _part_c(referral, timeline_seen, reasons_seen),
        "sent_at": referral.sent_at,
        "received_at": referral.received_at,
        "created_at": referral.created_at,
        "updated_at": referral.updated_at,
        "redacted": seen.withheld,
    }


def _note_document(access: _Access, note: ReferralNote, seen: _Seen) -> dict | None:
    """The note as the caller may see it: its author's always; the other side's only under a
    consent covering its category, else None. A note withheld is not shown at all: its
    existence, time and category are the other side's work on the family too."""
    decision = access.authored(note.category, note.author_organization_id)
    if not decision.permitted:
        return None
    seen.add(decision)
    return {"id": note.id, "referral_id": note.referral_id,
            "author_organization_id": note.author_organization_id,
            "category": note.category, "created_at": note.created_at, "body": note.body,
            "redacted": decision.withheld}


def _event_document(access: _Access, event: ReferralEvent, note: ReferralNote | None,
                    seen: _Seen) -> dict:
    document = {"id": event.id, "referral_id": event.referral_id,
                "occurred_at": event.occurred_at, "from_status": event.from_status,
                "to_status": event.to_status, "organization_id": event.organization_id}
    withheld = set()
    if event.business_status or event.reason or event.outcome:
        detail = seen.add(access.authored("service_status", event.organization_id))
        withheld.update(detail.withheld)
        if detail.permitted:
            document |= {"business_status": event.business_status, "reason": event.reason,
                         "outcome": event.outcome}
    shown = _note_document(access, note, seen) if note is not None else None
    if shown is not None:
        document["note"] = shown
    document["redacted"] = sorted(withheld)
    return document


def _record_read(access: _Access, seen: _Seen, resource_type: str, purpose: str,
                 *, always=True) -> None:
    """The read of what `seen` rendered: one event per purpose a consent let information
    pass to the caller for (its categories and consents); when nothing came that way, one
    event of the look itself, for `purpose`. `always=False`: disclosures only (a write's
    response)."""
    referral = access.referral
    disclosures = seen.disclosures()
    if not disclosures and not always:
        return
    for each_purpose, disclosed in disclosures.items() or [(purpose, policy.combine())]:
        audit.record(action="read", outcome="permit",
                     reason=disclosed.reason if disclosed.consent_ids else access.side,
                     resource_type=resource_type, resource_id=referral.id,
                     family_id=referral.family_id, purpose=each_purpose,
                     categories=disclosed.permitted, consent_ids=disclosed.consent_ids,
                     actor=access.actor)


# -- access ---------------------------------------------------------------------------------

# The referral and its family with its caregivers, in one statement, built once: every read
# and move of a referral runs it (the party clause keeps a third organization's look empty).
_REFERRAL_ACCESS = (
    sa.select(Referral, Family).join(Family, Family.id == Referral.family_id)
    .options(orm.joinedload(Family.caregivers))
    .where(Referral.id == sa.bindparam("referral_id", type_=sa.Uuid()),
           policy.referral_party_clause(Referral, sa.bindparam("organization_id",
                                                               type_=sa.Uuid())))
)
# A look shares the family's row (families.service.share_families); a move holds the family,
# then the referral (PostgreSQL locks in the order named: the family before its referrals, as
# everywhere). A locking read that waited returns the locked rows as they are now, but the
# rows joined to them as they were before the wait: the rows are locked first, then all of
# it read afresh, into objects this session may have loaded before.
_REFERRAL_FAMILY = (
    sa.select(Referral.id).join(Family, Family.id == Referral.family_id)
    .where(Referral.id == sa.bindparam("referral_id", type_=sa.Uuid()),
           policy.referral_party_clause(Referral, sa.bindparam("organization_id",
                                                               type_=sa.Uuid())))
)
_SHARE_REFERRAL = _REFERRAL_FAMILY.with_for_update(read=True, key_share=True, of=Family)
_LOCK_REFERRAL = _REFERRAL_FAMILY.with_for_update(of=[Family, Referral])
_REFERRAL_ACCESS_AGAIN = _REFERRAL_ACCESS.execution_options(populate_existing=True)


def _access(actor, referral_id: uuid.UUID, action: str, *, for_update=False) -> _Access:
    """The caller's access to a referral it is a party to, decided from the instant its
    family is shared (a look) or held with the referral (`for_update`: a move; then the
    referral and its family read as they are once held).
    Raises Problem 404 for an organization that may not know it exists."""
    keys = {"referral_id": referral_id, "organization_id": actor.organization_id}
    referral = family = None
    if db.session.scalar(_LOCK_REFERRAL if for_update else _SHARE_REFERRAL, keys) is not None:
        referral, family = db.session.execute(_REFERRAL_ACCESS_AGAIN, keys) \
            .unique().first() or (None, None)
    if referral is None:
        # Which family, if any, is recorded from a separate look: the refusal names it for
        # the auditors, never for the caller.
        family_id = db.session.scalar(sa.select(Referral.family_id)
                                      .where(Referral.id == referral_id))
        raise _not_found(referral_id, action, family_id=family_id)
    concerns_family(family.id)
    side = policy.referral_side(actor_organization_id=actor.organization_id, referral=referral)
    return _Access(actor, referral, family, side, now())


# NO KEY UPDATE: a hold changes no key, so a note or a timeline entry being inserted for the
# referral (which shares its row's key) is not a reason to leave the hold to later.
_LOCK_TO_HOLD = (sa.select(Referral)
                 .where(Referral.id == sa.bindparam("referral_id", type_=sa.Uuid()))
                 .with_for_update(key_share=True, skip_locked=True)
                 .execution_options(populate_existing=True))


def _hold_if_unsupported(access: _Access, viewers: policy.Viewers | None = None, *,
                         revoked: uuid.UUID | None = None) -> bool:
    """Put a sent, open referral on hold (`consent_ended`) when the consents in force no
    longer cover what it shares: a timeline entry and an audit event with it, naming the
    consents whose end held it. One they still cover, though a consent it rested on ended,
    rests on them from then on. `viewers`: the engine's viewers of a page or batch of
    referrals' families, at the access's instant; `revoked`: the consent whose revocation
    asks (see `_on_consent_revoked`)."""
    referral, family, at = access.referral, access.family, access.at
    if not _holdable(referral):
        return False

    receiver = referral.to_organization_id
    if receiver == access.actor.organization_id:
        viewer = access.viewer
    elif viewers is not None:
        viewer = viewers.of(receiver, family.id)
    else:
        viewer = policy.Viewer(actor_organization_id=receiver, family=family, at=at)
    decision = _receiver_decision(referral, viewer)
    if not decision.withheld:
        _rest_on_cover(access, decision, viewers)
        return False
    if _held_after_consent_ended(referral, family):
        return False
    # Another request may be moving it: take the row, and hold it only if it still may be
    # (the receiver may have held it meanwhile, knowing the consent had ended). A row another
    # request holds is left to it: a move holds the family too, and decides after this look
    # (waiting here could close a circle with a move waiting for the family this shares).
    if db.session.scalar(_LOCK_TO_HOLD, {"referral_id": referral.id}) is None:
        return False
    if not _holdable(referral) or _held_after_consent_ended(referral, family):
        return False
    _hold(referral, at, categories=decision.withheld,
          consent_ids=_ended_and_holding(referral, family, at, viewers, revoked))
    return True


def _ended(referral: Referral, at: datetime, viewers: policy.Viewers | None) -> list[str]:
    """The consents the referral rests on that are no longer in force at `at`."""
    if viewers is not None:
        return viewers.ended_among(referral.family_id, referral.consent_ids)
    return policy.ended_among(referral.consent_ids, at=at)


def _ended_and_holding(referral: Referral, family: Family, at: datetime,
                       viewers: policy.Viewers | None, revoked: uuid.UUID | None) -> list[str]:
    """The consents whose end holds the referral: those it rested on that ended, and the
    one being revoked when the receiver's cover rested on it until then (it came to, unseen,
    after one it rested on expired). A hold names these, not a consent that ended while
    others still covered the referral (it rested on those since)."""
    ended = _ended(referral, at, viewers)
    if revoked is not None and str(revoked) not in ended:
        until_then = _receiver_decision(referral, policy.Viewer(
            actor_organization_id=referral.to_organization_id, family=family,
            at=at - timedelta(microseconds=1)))
        if revoked in until_then.consent_ids:
            ended.append(str(revoked))
    return ended or list(referral.consent_ids)


def _rest_on_cover(access: _Access, decision: policy.Decision,
                   viewers: policy.Viewers | None) -> None:
    """A referral its receiver's consents still cover after a consent it rested on ended
    rests on those from then on (`decision`'s, as a resumption does): both sides are told
    those, and a later hold names those that end. Recorded as the service's change."""
    referral = access.referral
    covering = [str(c) for c in decision.consent_ids]
    if set(referral.consent_ids) <= set(covering) or not _ended(referral, access.at, viewers):
        return
    # Taken as a hold takes it; a row another request holds is left to the next look.
    if db.session.scalar(_LOCK_TO_HOLD, {"referral_id": referral.id}) is None:
        return
    if not _holdable(referral) or not _ended(referral, access.at, viewers):
        return
    referral.consent_ids = covering
    referral.updated_at = access.at
    db.session.flush()
    audit.record(action="update", outcome="permit", reason="rests_on_consents_in_force",
                 resource_type="referral", resource_id=referral.id,
                 family_id=referral.family_id, purpose="referral", consent_ids=covering)


def _held_after_consent_ended(referral: Referral, family: Family) -> bool:
    """A hold the receiver put on the referral when the consents no longer covered it (say
    `awaiting_consent`): that hold stands, and is never relabelled `consent_ended`."""
    return referral.status == "on_hold" and bool(_receiver_decision(referral, policy.Viewer(
        actor_organization_id=referral.to_organization_id, family=family,
        at=referral.updated_at)).withheld)


def _receiver_decision(referral: Referral, viewer: policy.Viewer) -> policy.Decision:
    """Whether the receiver (`viewer`) may see everything the referral shares: what keeps
    it open (see `policy.referral_receiver_decision`)."""
    return policy.referral_receiver_decision(
        viewer, sender_organization_id=referral.from_organization_id,
        shared_categories=referral.shared_categories)


def _holdable(referral: Referral) -> bool:
    """Sent and open, and not already held because a consent ended: a hold the receiver put
    on it while consent covered it (a waitlist, say) becomes one for `consent_ended`, which
    resumes only under consent."""
    return referral.status in ACTIVE_STATUSES or (
        referral.status == "on_hold" and referral.status_reason != "consent_ended")


_HELD_BY_RECEIVER = sa.and_(Referral.status == "on_hold",
                            Referral.status_reason != "consent_ended")
#: `_holdable` in SQL.
_HOLDABLE = sa.or_(Referral.status.in_(ACTIVE_STATUSES), _HELD_BY_RECEIVER)


def _hold(referral: Referral, at: datetime, *, categories, consent_ids) -> None:
    # The Part C clock is left as it is: a pause for documented family circumstances does not
    # end with the consent.
    previous = referral.status
    referral.status = "on_hold"
    referral.business_status = None
    referral.status_reason = "consent_ended"
    referral.outcome = None
    referral.status_set_by_organization_id = None
    referral.updated_at = at
    db.session.add(ReferralEvent(referral_id=referral.id, referral_version=referral.version + 1,
                                 occurred_at=at, from_status=previous, to_status="on_hold",
                                 reason="consent_ended"))
    db.session.flush()
    audit.record(action="transition", outcome="permit", reason="consent_ended",
                 resource_type="referral", resource_id=referral.id,
                 family_id=referral.family_id, purpose="referral", categories=categories,
                 consent_ids=consent_ids)


@consent_revoked.connect
def _on_consent_revoked(consent, *, family: Family, at: datetime, **_) -> None:
    """Revocation takes effect at once: in the same transaction, hold every open referral of
    the family that the consents still in force no longer cover; one they still cover rests
    on them from then on."""
    # Waited for, each: whoever else holds one of them (the sweep, between its batch's lock
    # and its commit) waits for nothing this revocation holds (the family before its
    # referrals, everywhere).
    referrals = list(db.session.scalars(
        sa.select(Referral).where(Referral.family_id == family.id, _HOLDABLE)
        .order_by(Referral.id).with_for_update()))
    viewers = policy.Viewers([family], at=at)
    for referral in referrals:
        access = _Access(_SERVICE, referral, family, "service", at)
        if _hold_if_unsupported(access, viewers, revoked=consent.id):
            db.session.flush()


class _ServiceActor:
    """The service itself, acting when a consent ends."""

    organization_id = None
    client_id = None
    token_id = None


_SERVICE = _ServiceActor()


def hold_unsupported(*, after: uuid.UUID | None = None,
                     batch: int = 200) -> tuple[int, uuid.UUID | None]:
    """One batch of the scheduled sweep: hold the open referrals after `after` (by id) whose
    consents no longer cover them (an expiry is also caught at the next access). Rows another
    request holds are skipped, caught at their next access or the next sweep. Returns how
    many were held and where the batch ended (None: the last batch)."""
    stmt = (sa.select(Referral).where(_HOLDABLE)
            .order_by(Referral.id).limit(batch).with_for_update(skip_locked=True))
    if after is not None:
        stmt = stmt.where(Referral.id > after)
    referrals = list(db.session.scalars(stmt))
    # The referrals were taken first, so their families are not waited for (the lock order is
    # the family first): a family another request holds is left to it, or to the next sweep.
    families = {f.id: f for f in share_families({r.family_id for r in referrals},
                                                 skip_locked=True)}
    # Decided, and dated, once the batch is held, not when the sweep began: a consent
    # recorded meanwhile counts, and a poll of `updated_since` since then sees the hold.
    at = now()
    viewers = policy.Viewers(families.values(), at=at)
    held = sum(_hold_if_unsupported(_Access(_SERVICE, r, families[r.family_id], "service", at),
                                    viewers)
               for r in referrals if r.family_id in families)
    return held, (referrals[-1].id if len(referrals) == batch else None)


# -- send -----------------------------------------------------------------------------------

def _mark_sent_if_allowed(actor, referral: Referral, family: Family, receiver: Organization,
                    at: datetime, action: str) -> None:
    """Raises 422 when the receiver does not accept referrals, 403 `consent-required`
    naming the shared categories no consent in force covers; else marks it sent."""
    if not receiver.accepting_referrals:
        raise validation_problem({"to_organization_id": [
            "This organization does not accept referrals now (see its directory listing)"]},
            audit={"action": action, "resource_type": "referral",
                   "resource_id": referral.id if action == "transition" else None,
                   "family_id": family.id, "reason": "not_accepting_referrals"})
    # Decided now, the family held (a send took it with the family, a move with the referral):
    # a revocation this waited for counts, as it committed before.
    decision = policy.referral_send_decision(
        family=family, sender_organization_id=actor.organization_id,
        receiver_organization_id=receiver.id, shared_categories=referral.shared_categories,
        at=now())
    if decision.withheld:
        # Which pair lacks the consent: from a record it does not hold, the sender passes on
        # what the custodian wrote, which the receiver sees only under a consent naming both.
        forwarded = family.custodian_organization_id != actor.organization_id
        raise Problem(
            "consent-required",
            "No consent in force lets these categories pass from the sender to the receiver "
            "for purpose `referral`" + (
                " (a consent naming the sender and the receiver, and for the family record's "
                "categories one naming the receiver and the family's custodian, who wrote "
                "them)" if forwarded else "") + f": {', '.join(decision.withheld)}",
            missing_categories=decision.withheld,
            audit={"action": action, "resource_type": "referral",
                   "resource_id": referral.id if action == "transition" else None,
                   "family_id": family.id,
                   "purpose": "referral", "reason": decision.reason,
                   "categories": sorted(decision.asked), "consent_ids": decision.consent_ids})
    referral.status = "requested"
    referral.consent_ids = [str(c) for c in decision.consent_ids]
    referral.sent_at = at
    _start_part_c_clock(referral, at)


def _record_send(actor, referral: Referral, action: str) -> None:
    audit.record(action=action, outcome="permit",
                 reason="sent", resource_type="referral", resource_id=referral.id,
                 family_id=referral.family_id, purpose="referral",
                 categories=referral.shared_categories, consent_ids=referral.consent_ids,
                 actor=actor)


def send_referral(actor, *, data: dict) -> tuple[dict, int]:
    """Create a referral, as a draft or sent (`requested`). Sending needs a receiver that
    accepts referrals and a consent in force covering every shared category.

    Raises Problem 404 (family not visible), 422 (receiver unknown, the sender itself, or not
    accepting), 403 `consent-required`.
    """
    # Held to send, shared for a draft (its answer may show the family under consent): a
    # revocation of a consent this rests on goes before or after it; decided once held.
    sending = data["status"] == "requested"
    family = get_family(data["family_id"], lock=sending, share=not sending,
                        linked_to=actor.organization_id)
    at = now()
    if family is None or not policy.may_see_family(
            actor_organization_id=actor.organization_id, family=family, at=at):
        # The family, if there is one, named for the auditors (get_family names it).
        raise Problem("not-found", "No family with this id is visible to this organization",
                      audit={"action": "create", "resource_type": "referral",
                             "reason": "not_found" if family is None else "no_consent"})
    receiver = db.session.get(Organization, data["to_organization_id"])
    if receiver is None:
        raise validation_problem({"to_organization_id": ["No organization with this id"]})
    if receiver.id == actor.organization_id:
        raise validation_problem({"to_organization_id": [
            "A referral goes to another organization"]})
    identified_on = (data.get("part_c") or {}).get("identified_on")
    if identified_on and identified_on < family.child_birth_date:
        # A mistyped year: a concern about this child cannot predate its birth. Said only to
        # whoever may see the birth date (identity) for the referral, and accounted as such.
        sight = policy.decide(actor_organization_id=actor.organization_id, family=family,
                              purpose="referral", categories=["identity"], at=at)
        if not sight.nothing_permitted:
            raise validation_problem({"part_c.identified_on": ["Before the child's birth date"]},
                                     audit={"told": sight})
    referral = Referral(
        id=uuid.uuid4(), family_id=family.id, from_organization_id=actor.organization_id,
        to_organization_id=receiver.id, status="draft", reasons=data["reasons"],
        reason_detail=data.get("reason_detail"), urgency=data["urgency"],
        shared_categories=sorted(data["shared_categories"]), consent_ids=[],
        part_c_identified_on=identified_on,
        referral_due_by=identified_on + REFERRAL_DAYS if identified_on else None,
        created_at=at, updated_at=at)
    if data["status"] == "requested":
        _mark_sent_if_allowed(actor, referral, family, receiver, at, "create")
    db.session.add(referral)
    db.session.flush()
    db.session.add(ReferralEvent(referral_id=referral.id, referral_version=referral.version,
                                 occurred_at=at, to_status=referral.status,
                                 organization_id=actor.organization_id,
                                 client_id=actor.client_id))
    if referral.status == "requested":
        _record_send(actor, referral, "create")
    else:
        audit.record(action="create", outcome="permit", reason="draft",
                     resource_type="referral", resource_id=referral.id, family_id=family.id,
                     categories=referral.shared_categories, actor=actor)
    access = _Access(actor, referral, family, "sender", at)
    seen = _Seen()
    document = _document(access, seen)
    _record_read(access, seen, "referral", "referral", always=False)
    return document, referral.version


# -- read -----------------------------------------------------------------------------------

def _purpose_of(access: _Access) -> str:
    """A receiver reads the family's information for `referral`; a sender reads feedback on
    its referral for `care_coordination`."""
    return "referral" if access.side == "receiver" else "care_coordination"


def read_referral(actor, *, referral_id: uuid.UUID) -> tuple[dict, int]:
    """The referral as the caller may see it, with its version; the read recorded. Puts it
    on hold first when its consents ended. Raises Problem 404 for a non-party."""
    access = _access(actor, referral_id, "read")
    _hold_if_unsupported(access)
    seen = _Seen()
    document = _document(access, seen)
    _record_read(access, seen, "referral", _purpose_of(access))
    return document, access.referral.version


def _overdue(organization_id: uuid.UUID, today: date):
    """Past a Part C clock the caller keeps: the sender's 7 days to send a draft, and the
    receiver's 45 days (unpaused) from delivery, acknowledged or not (acknowledging a late
    referral does not make it timely), held by the service since or not (a hold for
    consent_ended pauses nothing)."""
    return sa.or_(
        sa.and_(Referral.from_organization_id == organization_id, Referral.status == "draft",
                Referral.referral_due_by < today),
        sa.and_(Referral.to_organization_id == organization_id,
                Referral.status.in_(_TIMELINE_STATUSES), Referral.timeline_paused_since.is_(None),
                Referral.timeline_due_by < today))


def list_referrals(actor, *, limit: int, cursor: str | None = None, direction: str | None = None,
                   status: str | None = None, updated_since: datetime | None = None,
                   overdue: bool = False) -> Page:
    """The referrals the caller sent or received, most recently changed first, each as a
    single read would show it; the page recorded as one `search` event per family it
    disclosed (one for the page when it disclosed none)."""
    me = actor.organization_id
    filters = []
    if status is not None:
        filters.append(Referral.status == status)
    if updated_since is not None:
        filters.append(Referral.updated_at >= updated_since)
    at = now()
    if overdue:
        filters.append(_overdue(me, local_date(at)))
    # Each side read apart, newest first along its own index, and the two merged: one OR of
    # both would read and sort every referral the caller ever sent or received.
    sides = [sa.select(Referral).where(side, *filters)
             for side in policy.referral_party_sides(Referral, me, direction)]
    page = newest_first(sides, kind="referrals", at=Referral.updated_at, id=Referral.id,
                        cursor=cursor, limit=limit)
    families = {f.id: f for f in share_families({r.family_id for r in page.items})}
    at = now()  # decided once the page's families are shared
    if page.items:  # read again once shared: a move that committed meanwhile is shown
        db.session.execute(sa.select(Referral).where(
            Referral.id.in_([r.id for r in page.items]))
            .execution_options(populate_existing=True)).all()
    # The page's families' consents load at once, for every organization's view of them.
    viewers = policy.Viewers(families.values(), at=at)
    documents, seen_by_family = [], {}
    # Which of the page's consents name the caller, in one look (see _document).
    naming = viewers.consents_naming(me, {c for r in page.items for c in r.consent_ids})
    for referral in page.items:
        side = policy.referral_side(actor_organization_id=me, referral=referral)
        access = _Access(actor, referral, families[referral.family_id], side, at,
                         viewer=viewers.of(me, referral.family_id))
        _hold_if_unsupported(access, viewers)
        if status is not None and referral.status != status:
            continue  # it was put on hold just now
        seen = _Seen()  # the item's own `redacted`, as a single read of it would say
        documents.append(_document(access, seen, naming))
        seen_by_family.setdefault(referral.family_id, _Seen()).decisions += seen.decisions
    # One event per family the page disclosed and purpose it was disclosed for, with that
    # family's categories and consents only: each family's accounting of disclosures must say
    # exactly what passed about it, and why. The page's other families (nothing of them
    # passed under consent: the caller's own, or withheld) are named by one event of the
    # look itself, as is a page that listed nothing: an auditor following a family finds
    # every look that listed it.
    disclosed, undisclosed = set(), []
    for family_id, seen in seen_by_family.items():
        for purpose, found in seen.disclosures().items():
            disclosed.add(family_id)
            audit.record(action="search", outcome="permit", reason=found.reason,
                         resource_type="referral", actor=actor, family_id=family_id,
                         purpose=purpose, categories=found.permitted,
                         consent_ids=found.consent_ids)
        if family_id not in disclosed:
            undisclosed.append(family_id)
    if undisclosed or not disclosed:
        audit.record(action="search", outcome="permit", reason="party",
                     resource_type="referral", actor=actor, family_ids=undisclosed,
                     purpose={"received": "referral", "sent": "care_coordination"}
                     .get(direction))
    page.items = documents
    return page


# -- transitions ----------------------------------------------------------------------------

def _check_fields(to: str, data: dict, referral: Referral) -> None:
    """422 naming what the target status requires or refuses."""
    errors = {}
    reasons = _REASONS.get(to)
    if reasons is None and "reason" in data:
        errors["reason"] = [f"A referral becoming {to} takes no reason"]
    elif reasons is not None and data.get("reason") not in reasons:
        errors["reason"] = [f"Required: one of {', '.join(reasons)}"]
    if to == "completed" and "outcome" not in data:
        errors["outcome"] = ["Required on completion"]
    elif to != "completed" and "outcome" in data:
        errors["outcome"] = ["Only a completion has an outcome"]
    if to != "in_progress" and "business_status" in data:
        errors["business_status"] = ["Only a referral in progress has a business status"]
    elif to == referral.status == "in_progress" and "business_status" not in data:
        errors["business_status"] = ["Required to record progress on a referral in progress"]
    if data.get("reason") in PAUSING_HOLD_REASONS and to == "on_hold" and "note" not in data:
        errors["note"] = ["A hold that pauses the Part C clock must be documented"]
    if errors:
        raise validation_problem(errors)


def _start_part_c_clock(referral: Referral, delivered_at: datetime) -> None:
    """Part C's 45 days run from the referral being received by the provider: delivered to
    it (DOMAIN.md), not from its first move, which could stretch them to almost 90 (a
    receiver acknowledging on day 44). Counted in the service's days."""
    if referral.part_c_identified_on is not None:
        referral.timeline_due_by = local_date(delivered_at) + TIMELINE_DAYS


def _move_part_c_clock(referral: Referral, to: str, at: datetime, reason: str | None) -> None:
    """Pause the 45-day clock (started at delivery) while a documented pausing hold lasts,
    then push its date back by the time paused in all, in whole days rounded up once (a
    started day counts, once: five short pauses in one day are one day, not five). A clock
    that has run out (past its due day, as `?overdue=true` judges it) stays run out: no pause
    starts."""
    if referral.timeline_due_by is None:
        return
    pausing = to == "on_hold" and reason in PAUSING_HOLD_REASONS
    paused = referral.timeline_paused_since
    if paused is not None and not pausing:
        before = _whole_days(referral.timeline_paused_seconds)
        referral.timeline_paused_seconds += ceil((at - paused).total_seconds())
        referral.timeline_due_by += timedelta(
            days=_whole_days(referral.timeline_paused_seconds) - before)
        referral.timeline_paused_since = None
    elif paused is None and pausing and referral.timeline_due_by >= local_date(at):
        referral.timeline_paused_since = at


def _whole_days(seconds: int) -> int:
    return ceil(seconds / 86400)


def _held_from(referral: Referral) -> str | None:
    """The status the referral was in when its current hold began (relabels skipped)."""
    return db.session.scalar(
        sa.select(ReferralEvent.from_status)
        .where(ReferralEvent.referral_id == referral.id, ReferralEvent.to_status == "on_hold",
               ReferralEvent.from_status != "on_hold")
        .order_by(ReferralEvent.referral_version.desc()).limit(1))


def _check_resumable(access: _Access) -> None:
    """A referral held because its consent ended resumes only under a consent in force, and
    rests on that consent from then on."""
    referral, family = access.referral, access.family
    # Decided now, the family held since the move began (see `_access`): a revocation this
    # waited for counts.
    decision = _receiver_decision(referral, policy.Viewer(
        actor_organization_id=referral.to_organization_id, family=family, at=now()))
    if decision.withheld:
        raise Problem("consent-required", "No consent in force covers what this referral "
                      f"shares: {', '.join(decision.withheld)}; record a new consent first",
                      missing_categories=decision.withheld,
                      audit={"action": "transition", "resource_type": "referral",
                             "resource_id": referral.id, "family_id": family.id,
                             "purpose": "referral", "reason": decision.reason,
                             "categories": sorted(decision.asked)})
    # A later hold names the consents it rests on: those now, not those that ended.
    referral.consent_ids = [str(c) for c in decision.consent_ids]


def transition_referral(actor, *, referral_id: uuid.UUID, data: dict,
                        preconditions: Preconditions) -> tuple[dict, int]:
    """Move a referral along the contract's table.

    Raises Problem 404 (not a party), 428/412 (If-Match missing or stale), 409 (not allowed
    from the current status), 403 (the other side's move; or `consent-required` to send or
    resume without consent), 422 (reason, outcome or business status missing or misplaced).
    """
    access = _access(actor, referral_id, "transition", for_update=True)
    referral, family, at = access.referral, access.family, access.at
    check_preconditions(preconditions, referral.version, required=True,
                   audit={"family_id": referral.family_id})
    # A consent that ended holds it first (the version the caller read is the one it moves);
    # the move is then judged from `on_hold`.
    _hold_if_unsupported(access)
    to = data["status"]
    sources, sides = TRANSITIONS[to]
    if referral.status == "on_hold" and to in _DECISIONS | {"in_progress"}:
        # A referral the service held before the receiver accepted it resumes to that
        # decision (accepted or rejected); one held after, to in_progress.
        undecided = _held_from(referral) in _UNDECIDED
        sources = {"on_hold"} if undecided == (to in _DECISIONS) else set()
    if referral.status not in sources:
        raise Problem("invalid-transition", f"A referral that is {referral.status} cannot "
                                            f"become {to}")
    if access.side not in sides:
        raise Problem("forbidden", f"The {access.side} may not make a referral {to}",
                      audit={"action": "transition", "resource_type": "referral",
                             "resource_id": referral.id, "family_id": family.id,
                             "reason": "wrong_side"})
    _check_fields(to, data, referral)
    previous = referral.status
    if to == "requested":
        _mark_sent_if_allowed(actor, referral, family,
                        db.session.get(Organization, referral.to_organization_id), at,
                        "transition")
    if previous == "on_hold" and to in ("in_progress", "accepted"):
        _check_resumable(access)
    made = referral.version + 1  # the version this move makes, named by its timeline step
    # The receiver's acknowledgement (`received_on`), whichever its first move: the 45 days
    # ran from delivery already.
    if referral.received_at is None and access.side == "receiver":
        referral.received_at = at
    _move_part_c_clock(referral, to, at, data.get("reason"))
    referral.status = to
    referral.business_status = data.get("business_status", referral.business_status) \
        if to == "in_progress" else None
    referral.status_reason = data.get("reason")
    referral.outcome = data.get("outcome")
    referral.status_set_by_organization_id = actor.organization_id
    referral.updated_at = at
    note = None
    if "note" in data:
        note = ReferralNote(id=uuid.uuid4(), referral_id=referral.id, created_at=at,
                            author_organization_id=actor.organization_id,
                            category="coordination_notes", body=data["note"])
        db.session.add(note)
        db.session.flush()  # the event names it: no relationship orders the two inserts
    db.session.add(ReferralEvent(
        referral_id=referral.id, referral_version=made, occurred_at=at,
        from_status=previous, to_status=to,
        business_status=data.get("business_status"), reason=data.get("reason"),
        outcome=data.get("outcome"), organization_id=actor.organization_id,
        client_id=actor.client_id, note_id=note.id if note else None))
    db.session.flush()
    seen = _Seen()
    document = _document(access, seen)
    if to == "requested":
        _record_send(actor, referral, "transition")
    else:
        # The move: one event naming what it wrote (the side's own information, no consent).
        written = {"service_status"} if {"business_status", "reason", "outcome"} & set(data) \
            else set()
        audit.record(action="transition", outcome="permit", reason=access.side,
                     resource_type="referral", resource_id=referral.id, family_id=family.id,
                     categories=written | ({"coordination_notes"} if note else set()),
                     actor=actor)
    # What its answer showed the caller under consent (a relaying sender's look at the family
    # record, the other side's feedback): a disclosure of its own, as a send's answer is.
    _record_read(access, seen, "referral", "referral", always=False)
    return document, referral.version


# -- timeline and notes ---------------------------------------------------------------------

def list_events(actor, *, referral_id: uuid.UUID, limit: int, cursor: str | None = None) -> Page:
    """The referral's timeline, newest first, each step as the caller may see it."""
    access = _access(actor, referral_id, "read")
    _hold_if_unsupported(access)
    stmt = sa.select(ReferralEvent).where(ReferralEvent.referral_id == referral_id)
    # A cursor is this referral's alone: another's would only position this one's timeline.
    page = keyset_page(stmt, kind=f"referral-events:{referral_id}",
                       order=[ReferralEvent.referral_version],
                       cursor=cursor, limit=limit, descending=True,
                       encode=lambda e: [e.referral_version], decode=lambda v: [int(v[0])])
    note_ids = [e.note_id for e in page.items if e.note_id]
    notes = {n.id: n for n in db.session.scalars(
        sa.select(ReferralNote).where(ReferralNote.id.in_(note_ids)))} if note_ids else {}
    seen = _Seen()
    page.items = [_event_document(access, event, notes.get(event.note_id), seen)
                  for event in page.items]
    _record_read(access, seen, "referral_events", "care_coordination")
    return page


def write_note(actor, *, referral_id: uuid.UUID, data: dict) -> dict:
    """Add a note of the caller's to a referral it is a party to; the other side reads it
    only under consent. Raises Problem 404 for an organization that is not a party."""
    access = _access(actor, referral_id, "create")
    _hold_if_unsupported(access)
    note = ReferralNote(id=uuid.uuid4(), referral_id=access.referral.id,
                        author_organization_id=actor.organization_id, category=data["category"],
                        body=data["body"], created_at=access.at)
    db.session.add(note)
    db.session.flush()
    audit.record(action="create", outcome="permit", reason="author",
                 resource_type="referral_note", resource_id=note.id,
                 family_id=access.referral.family_id, purpose="care_coordination",
                 categories=[note.category], actor=actor)
    return _note_document(access, note, _Seen())


def list_notes(actor, *, referral_id: uuid.UUID, limit: int, cursor: str | None = None) -> Page:
    """The referral's notes, newest first: the caller's own, and the other side's only under a
    consent covering each one's category."""
    access = _access(actor, referral_id, "read")
    _hold_if_unsupported(access)
    referral = access.referral
    other = (referral.to_organization_id if actor.organization_id == referral.from_organization_id
             else referral.from_organization_id)
    # Chosen in the query, so a page and its cursor hold only notes the caller may see: a
    # page of the other side's notes left empty, and its cursor, would tell when it wrote.
    readable = [category for category in NOTE_CATEGORIES
                if access.authored(category, other).permitted]
    stmt = sa.select(ReferralNote).where(
        ReferralNote.referral_id == referral_id,
        sa.or_(ReferralNote.author_organization_id == actor.organization_id,
               sa.and_(ReferralNote.author_organization_id == other,
                       ReferralNote.category.in_(readable))))
    page = newest_first(stmt, kind=f"referral-notes:{referral_id}", at=ReferralNote.created_at,
                        id=ReferralNote.id, cursor=cursor, limit=limit)
    seen = _Seen()
    page.items = [_note_document(access, note, seen) for note in page.items]
    _record_read(access, seen, "referral_notes", "care_coordination")
    return page
