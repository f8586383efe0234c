"""Referrals over HTTP: send, list, read, move along their lifecycle, timeline and notes."""

import uuid

from flask import Blueprint, request

from audit.boundary import audited_as
from auth.protect import current_actor, require_scope
from core.concurrency import Preconditions, etag_for
from core.docs import IF_MATCH_REQUIRED, IF_NONE_MATCH, operation
from core.idempotency import idempotent
from core.web import load_body, load_query, respond
from referrals import service
from referrals.schemas import (
    NoteInputSchema,
    NotePageSchema,
    NoteSchema,
    ReferralEventPageSchema,
    ReferralInputSchema,
    ReferralListQuery,
    ReferralPageSchema,
    ReferralSchema,
    TimelineQuery,
    TransitionInputSchema,
)

bp = Blueprint("referrals", __name__, url_prefix="/api/v1/referrals")
TAGS = ["Referrals"]
_ETAG = {"ETag": "Version of the referral; send it back in If-Match to move it."}


def _referral_now(referral_id: str):
    """A replayed send: the referral as the sender sees it now. The send's own scope is
    enough, as it was for the first answer."""
    document, version = service.read_referral(current_actor(), referral_id=uuid.UUID(referral_id))
    return respond(ReferralSchema, document, headers={"ETag": etag_for(version)})


@bp.post("")
@require_scope("referrals:write")
@idempotent(reread=_referral_now)
@operation(summary="Send a referral, or keep it as a draft", tags=TAGS,
           body=ReferralInputSchema, errors=(403, 404), responses={201: ReferralSchema},
           headers={201: _ETAG})
def send_referral():
    """`requested` (the default) sends it: the family must be visible to the sender, the
    receiver must accept referrals, and a consent in force must let every shared category
    pass from the sender to the receiver for purpose `referral`, else 403 `consent-required`
    with `missing_categories`, and nothing is stored. A `draft` stays with the sender until
    it moves it to `requested`. A retry with the same `Idempotency-Key` answers 201 with
    the referral as a read shows it now: family information is never replayed from storage."""
    data = load_body(ReferralInputSchema)
    document, version = service.send_referral(current_actor(), data=data)
    return respond(ReferralSchema, document, status=201,
                   headers={"ETag": etag_for(version),
                            "Location": f"/api/v1/referrals/{document['id']}"})


@bp.get("")
@require_scope("referrals:read")
@audited_as("search")
@operation(summary="List the referrals you sent or received", tags=TAGS,
           query=ReferralListQuery, responses={200: ReferralPageSchema})
def list_referrals():
    """Most recently changed first; each item as a single read would show it. A page may
    hold fewer than `limit` items, even none, when referrals on it were put on hold by this
    very look (their consent ended) and so no longer match `status`: follow `next_cursor`
    until it is null. A walk is not a snapshot: a referral that changes meanwhile moves to the
    front, ahead of the cursor; to keep a copy in step, ask again with `updated_since` set to a
    minute before the last walk began: a change is dated when its request began and shows
    once that request commits, up to 30 s later (a request that would commit later is refused
    503), so a walk can pass it by unseen; what comes again is known by its `id` and
    `updated_at`."""
    args = load_query(ReferralListQuery)
    return respond(ReferralPageSchema, service.list_referrals(current_actor(), **args))


@bp.get("/<uuid:referral_id>")
@require_scope("referrals:read")
@operation(summary="Read a referral", tags=TAGS, responses={200: ReferralSchema},
           headers={200: _ETAG})
def get_referral(referral_id: uuid.UUID):
    """The receiver sees the shared categories as the engine permits them now (purpose
    `referral`). The sender always sees the status; the receiver's feedback only under a
    consent for `care_coordination`. Anyone else: 404."""
    document, version = service.read_referral(current_actor(), referral_id=referral_id)
    return respond(ReferralSchema, document, headers={"ETag": etag_for(version)})


@bp.post("/<uuid:referral_id>/transitions")
@require_scope("referrals:write")
@audited_as("transition")
@operation(summary="Move a referral to another status", tags=TAGS,
           body=TransitionInputSchema, errors=(403, 409, 412, 428),
           responses={200: ReferralSchema}, headers={200: _ETAG},
           parameters=[IF_MATCH_REQUIRED, IF_NONE_MATCH])
def transition_referral(referral_id: uuid.UUID):
    """| to | from | set by |
|---|---|---|
| requested | draft | sender |
| received | requested | receiver |
| accepted, rejected | requested, received, on_hold (1) | receiver |
| in_progress | accepted, in_progress (2), on_hold (3) | receiver |
| on_hold | accepted, in_progress, on_hold (4) | receiver, or the service when consent ends |
| completed | accepted, in_progress | receiver |
| cancelled | any open status | sender or receiver |

Beyond the contract's table, deliberately: (1) the service also holds a referral not yet
accepted when its consent ends, and the receiver resumes it to its decision, not past it;
(2) records a new `business_status`; (3) a referral held after it was accepted; (4) changes a
hold's `reason`: a provider documents its attempts to get consent again (`awaiting_consent`,
with a `note`), which pauses the Part C clock. When a consent ends, a hold the receiver had
put while consent covered the referral (a waitlist, say) becomes `consent_ended`.
Illegal moves are 409 `invalid-transition`; the other side's moves 403. Rejection,
cancellation and hold need a `reason`, completion an `outcome`. A referral stays open while
consents in force let the receiver see everything it shares; resuming a referral held because
its consent ended needs such consents again (403 `consent-required`), not the sender's sight of
the family, which only sending needs."""
    data = load_body(TransitionInputSchema)
    document, version = service.transition_referral(
        current_actor(), referral_id=referral_id, data=data,
        preconditions=Preconditions.of(request.headers))
    return respond(ReferralSchema, document, headers={"ETag": etag_for(version)})


@bp.get("/<uuid:referral_id>/events")
@require_scope("referrals:read")
@operation(summary="A referral's timeline", tags=TAGS, query=TimelineQuery,
           responses={200: ReferralEventPageSchema})
def list_referral_events(referral_id: uuid.UUID):
    """Every step, newest first: who, when, from and to which status, and why; the other
    side's reasons and notes only under consent."""
    args = load_query(TimelineQuery)
    page = service.list_events(current_actor(), referral_id=referral_id, **args)
    return respond(ReferralEventPageSchema, page)


@bp.post("/<uuid:referral_id>/notes")
@require_scope("referrals:write")
@idempotent
@operation(summary="Write a note on a referral", tags=TAGS, body=NoteInputSchema,
           responses={201: NoteSchema})
def write_referral_note(referral_id: uuid.UUID):
    """A note of the caller's, in a category (`coordination_notes` by default); the other
    side sees it only under a consent for `care_coordination` covering it."""
    data = load_body(NoteInputSchema)
    document = service.write_note(current_actor(), referral_id=referral_id, data=data)
    return respond(NoteSchema, document, status=201)


@bp.get("/<uuid:referral_id>/notes")
@require_scope("referrals:read")
@operation(summary="A referral's notes", tags=TAGS, query=TimelineQuery,
           responses={200: NotePageSchema})
def list_referral_notes(referral_id: uuid.UUID):
    """Newest first: the caller's own notes, and the other side's only under a consent for
    `care_coordination` covering each one's category; without one, a note of the other side
    is not listed, nor counted in pages and cursors."""
    args = load_query(TimelineQuery)
    page = service.list_notes(current_actor(), referral_id=referral_id, **args)
    return respond(NotePageSchema, page)
