"""Input, query and output schemas of referrals, their timeline and notes."""

from marshmallow import Schema, ValidationError, fields, validate

from consent.categories import CATEGORIES
from core.pagination import PageQuery, page_schema
from core.schemas import (
    CalendarDate,
    InputSchema,
    Instant,
    QueryBoolean,
    Timestamp,
    text,
    unique_items,
)
from core.time import today
from families.schemas import FamilySchema
from referrals.models import (
    BUSINESS_STATUSES,
    CANCELLATION_REASONS,
    HOLD_REASONS,
    NOTE_CATEGORIES,
    OUTCOMES,
    REASON_CODES,
    REJECTION_REASONS,
    SHAREABLE_CATEGORIES,
    STATUS_REASONS,
    STATUSES,
    URGENCIES,
)

_CATEGORY_LIST = fields.List(fields.String(metadata={"enum": list(CATEGORIES)}))


def _not_in_the_future(value):
    if value > today():
        raise ValidationError("Cannot be in the future")


# -- output --------------------------------------------------------------------------------

class PartCSchema(Schema):
    """Part C of IDEA clocks: refer within 7 days of identifying a concern; evaluate and hold
    the first plan meeting within 45 days of the referral being received by the provider
    (delivered to it), paused for documented family circumstances or repeated attempts to
    obtain consent."""

    identified_on = CalendarDate(metadata={
        "description": "When the referrer identified the concern: `referral_reason` it "
                       "wrote, absent (with `referral_due_by`) where the reasons are."})
    referral_due_by = CalendarDate(metadata={
        "description": "`identified_on` + 7 days: when the referral must be sent."})
    received_on = CalendarDate(allow_none=True, required=True, metadata={
        "description": "The day of the receiver's acknowledgement (its first move), in the "
                       "service's time zone; null until then. The 45 days do not wait for "
                       "it."})
    timeline_due_by = CalendarDate(allow_none=True, metadata={
        "description": "The day the referral was delivered (`sent_at`, in the service's "
                       "time zone) + 45 days, later by the time the clock was paused in "
                       "all, in whole days rounded up once; null until sent. Once the "
                       "receiver has moved the referral, the receiver's `service_status`: "
                       "absent for a referrer no consent lets see it."})
    timeline_paused_since = Timestamp(allow_none=True, metadata={
        "description": "Set while the 45-day clock is paused; absent with "
                       "`timeline_due_by`."})


class ReferralSchema(Schema):
    """A referral as the caller may see it: what it may not see is absent and named in
    `redacted`. The sender always sees the coarse `status`; the receiver's feedback
    (`business_status`, `status_reason`, `outcome`) is `service_status` information."""

    id = fields.UUID(required=True)
    family_id = fields.UUID(required=True)
    from_organization_id = fields.UUID(required=True)
    to_organization_id = fields.UUID(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    business_status = fields.String(allow_none=True, metadata={
        "enum": list(BUSINESS_STATUSES), "description": "`service_status`"})
    status_reason = fields.String(allow_none=True, metadata={
        "enum": list(STATUS_REASONS),
        "description": "`service_status`: why it was rejected, cancelled or put on hold."})
    outcome = fields.String(allow_none=True, metadata={
        "enum": list(OUTCOMES), "description": "`service_status`"})
    reasons = fields.List(fields.String(metadata={"enum": list(REASON_CODES)}),
                          metadata={"description": "`referral_reason`"})
    reason_detail = fields.String(allow_none=True, metadata={"description": "`referral_reason`"})
    urgency = fields.String(required=True, metadata={"enum": list(URGENCIES)})
    shared_categories = fields.List(
        fields.String(metadata={"enum": list(SHAREABLE_CATEGORIES)}), required=True)
    consent_ids = fields.List(fields.UUID(), required=True, metadata={
        "description": "The consents the referral rests on, those the caller may know "
                       "exist: the send's, until one ends while others still cover the "
                       "receiver; then those (as on a resumption). A `consent_ended` hold "
                       "leaves those that ended."})
    family = fields.Nested(FamilySchema, required=True, metadata={
        "description": "The family's shared categories, as the engine permits them now."})
    part_c = fields.Nested(PartCSchema, allow_none=True, required=True)
    sent_at = Timestamp(allow_none=True, required=True)
    received_at = Timestamp(allow_none=True, required=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    redacted = fields.List(fields.String(metadata={"enum": list(CATEGORIES)}), required=True,
                           metadata={"description": "Categories withheld from this caller."})


ReferralPageSchema = page_schema(ReferralSchema, "ReferralPage")


class NoteSchema(Schema):
    """A note, shown whole: its author's always, the other side's only under a consent for
    `care_coordination` covering its category (without one it is not shown at all, nor that
    it exists). `redacted` is empty."""

    id = fields.UUID(required=True)
    referral_id = fields.UUID(required=True)
    author_organization_id = fields.UUID(required=True)
    category = fields.String(required=True, metadata={"enum": list(NOTE_CATEGORIES)})
    body = fields.String()
    created_at = Timestamp(required=True)
    redacted = _CATEGORY_LIST


NotePageSchema = page_schema(NoteSchema, "NotePage")


class ReferralEventSchema(Schema):
    """One step of the timeline. `business_status`, `reason` and `outcome` are
    `service_status` information of the side that acted: the three are there (null where not
    set) when the step recorded any of them and the caller may see it, absent when it recorded
    none or when `redacted` names `service_status`. `note`: the step's note, when the caller
    may read it (see Note). `organization_id` null: the service acted (a consent ended)."""

    id = fields.UUID(required=True)
    referral_id = fields.UUID(required=True)
    occurred_at = Timestamp(required=True)
    from_status = fields.String(allow_none=True, required=True,
                                metadata={"enum": list(STATUSES)})
    to_status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    business_status = fields.String(allow_none=True,
                                    metadata={"enum": list(BUSINESS_STATUSES)})
    reason = fields.String(allow_none=True, metadata={"enum": list(STATUS_REASONS)})
    outcome = fields.String(allow_none=True, metadata={"enum": list(OUTCOMES)})
    organization_id = fields.UUID(allow_none=True, required=True)
    note = fields.Nested(NoteSchema, allow_none=True)
    redacted = _CATEGORY_LIST


ReferralEventPageSchema = page_schema(ReferralEventSchema, "ReferralEventPage")


# -- input ---------------------------------------------------------------------------------

def _identity_shared(values):
    if "identity" not in values:
        raise ValidationError("`identity` must be shared: the receiver has to know who the "
                              "family is")


class PartCInputSchema(InputSchema):
    identified_on = CalendarDate(required=True, validate=_not_in_the_future, metadata={
        "description": "The day the referral source identified the concern."})


class ReferralInputSchema(InputSchema):
    family_id = fields.UUID(required=True)
    to_organization_id = fields.UUID(required=True)
    reasons = fields.List(fields.String(validate=validate.OneOf(REASON_CODES)), required=True,
                          validate=[validate.Length(1, len(REASON_CODES)), unique_items])
    reason_detail = text(4000, multiline=True, allow_none=True)
    urgency = fields.String(load_default="routine", validate=validate.OneOf(URGENCIES))
    shared_categories = fields.List(
        fields.String(validate=validate.OneOf(SHAREABLE_CATEGORIES)), required=True,
        validate=[validate.Length(1, len(SHAREABLE_CATEGORIES)), unique_items,
                  _identity_shared],
        metadata={"description": "What the referral shares with the receiver: `identity` "
                                 "always, and each category a consent in force lets pass "
                                 "from the sender to the receiver for purpose `referral` "
                                 "(else 403 `consent-required`)."})
    status = fields.String(load_default="requested",
                           validate=validate.OneOf(["requested", "draft"]), metadata={
                               "description": "`requested` sends it; `draft` keeps it with "
                                              "the sender, unseen by the receiver."})
    part_c = fields.Nested(PartCInputSchema, allow_none=True)


_TRANSITION_FIELDS = {
    "business_status": "while `in_progress`",
    "reason": "rejection: " + ", ".join(REJECTION_REASONS) + "; cancellation: "
              + ", ".join(CANCELLATION_REASONS) + "; hold: "
              + ", ".join(r for r in HOLD_REASONS if r != "consent_ended"),
    "outcome": "on completion",
}


class TransitionInputSchema(InputSchema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES[1:]))
    business_status = fields.String(validate=validate.OneOf(BUSINESS_STATUSES), metadata={
        "description": "Only with `in_progress`."})
    reason = fields.String(validate=validate.OneOf(
        tuple(r for r in STATUS_REASONS if r != "consent_ended")), metadata={
        "description": "Required with `rejected`, `cancelled` and `on_hold` ("
                       + _TRANSITION_FIELDS["reason"] + ")."})
    outcome = fields.String(validate=validate.OneOf(OUTCOMES), metadata={
        "description": "Required with `completed`."})
    note = text(4000, multiline=True, metadata={
        "description": "Kept as a `coordination_notes` note of the side that acts. Required "
                       "for a hold that pauses the Part C clock (`family_circumstances`, "
                       "`awaiting_consent`): the pause must be documented."})


class NoteInputSchema(InputSchema):
    body = text(4000, multiline=True, required=True)
    category = fields.String(load_default="coordination_notes",
                             validate=validate.OneOf(NOTE_CATEGORIES))


class ReferralListQuery(PageQuery, InputSchema):
    direction = fields.String(validate=validate.OneOf(["sent", "received"]), metadata={
        "description": "Only referrals the caller sent, or only those it received."})
    status = fields.String(validate=validate.OneOf(STATUSES),
                           metadata={"description": "Only referrals in this status."})
    updated_since = Instant(metadata={
        "description": "Only referrals changed at or after this instant."})
    overdue = QueryBoolean(load_default=False, metadata={
        "description": "Only referrals past a Part C clock the caller keeps: the referrer's "
                       "drafts past `referral_due_by`; the receiver's open referrals past "
                       "`timeline_due_by` (45 days from delivery) and not paused, "
                       "acknowledged or not. The 45-day clock is "
                       "the receiver's `service_status`: a referrer reads it on each referral "
                       "where a consent lets it, never from this filter, whose pages would "
                       "tell of it without consent."})


class TimelineQuery(PageQuery, InputSchema):
    """`limit` and `cursor`."""
