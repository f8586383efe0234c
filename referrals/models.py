"""A referral from a community professional to an infant mental health provider, its timeline
and the notes the two sides exchange about it."""

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db, one_of
from core.ids import new_id
from core.sqltypes import JSONDocument
from core.time import now

#: Referral reason codes (DOMAIN.md).
REASON_CODES = (
    "attachment_concerns", "feeding_concerns", "sleep_concerns", "regulation_concerns",
    "developmental_concerns", "caregiver_depression", "caregiver_mental_health",
    "caregiver_substance_use", "domestic_violence_exposure", "trauma_exposure",
    "child_welfare_involvement", "prematurity_nicu", "grief_loss", "parenting_support", "other",
)
URGENCIES = ("routine", "urgent")
STATUSES = ("draft", "requested", "received", "accepted", "rejected", "in_progress", "on_hold",
            "completed", "cancelled")
OPEN_STATUSES = frozenset({"draft", "requested", "received", "accepted", "in_progress",
                           "on_hold"})
#: Sent and still open: what a consent's end puts on hold.
ACTIVE_STATUSES = frozenset({"requested", "received", "accepted", "in_progress"})
BUSINESS_STATUSES = ("contact_attempted", "scheduled", "no_show", "engaged")
REJECTION_REASONS = ("at_capacity", "not_eligible", "family_declined", "unable_to_contact",
                     "duplicate", "other")
CANCELLATION_REASONS = ("family_declined", "duplicate", "sent_in_error", "family_moved",
                        "no_longer_needed", "other")
#: `consent_ended` is set by the service only, when a consent the referral rests on ends.
HOLD_REASONS = ("family_circumstances", "awaiting_consent", "waitlist", "other",
                "consent_ended")
#: Holds that pause the Part C 45-day clock (34 CFR 303.310(b)): documented exceptional family
#: circumstances, or documented repeated attempts to obtain consent.
PAUSING_HOLD_REASONS = frozenset({"family_circumstances", "awaiting_consent"})
OUTCOMES = ("goals_met", "family_discontinued", "transferred", "moved", "other")
#: What a referral may share: the family record's categories (authored by its custodian) and
#: what the sender itself knows and writes (reasons, screening, health, child welfare).
SHAREABLE_CATEGORIES = ("identity", "contact", "referral_reason", "screening", "health",
                        "child_welfare")
#: A note holds what its author writes: never the family record's own categories.
NOTE_CATEGORIES = ("coordination_notes", "service_status", "referral_reason", "screening",
                   "health", "child_welfare")
STATUS_REASONS = tuple(dict.fromkeys(REJECTION_REASONS + CANCELLATION_REASONS + HOLD_REASONS))


class Referral(db.Model):
    """Sent by `from_organization_id` (the sender) to `to_organization_id` (the receiver)."""

    __tablename__ = "referrals"
    __table_args__ = (
        one_of("status", STATUSES),
        one_of("urgency", URGENCIES),
        one_of("business_status", BUSINESS_STATUSES),
        one_of("status_reason", STATUS_REASONS),
        one_of("outcome", OUTCOMES),
        sa.CheckConstraint("from_organization_id <> to_organization_id", name="two_sides"),
        # Each side's list, most recently changed first; and the family's referrals.
        sa.Index("ix_referrals_from_updated", "from_organization_id", "updated_at", "id"),
        sa.Index("ix_referrals_to_updated", "to_organization_id", "updated_at", "id"),
        sa.Index("ix_referrals_family", "family_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("families.id"))
    from_organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    to_organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    status: Mapped[str] = mapped_column(String(16))
    #: The receiver's progress while in progress (`service_status`).
    business_status: Mapped[str | None] = mapped_column(String(24))
    #: Why it was rejected, cancelled or put on hold, as a code.
    status_reason: Mapped[str | None] = mapped_column(String(24))
    #: Who set `status_reason` (and `outcome`): its author; null when the service did.
    status_set_by_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id"))
    outcome: Mapped[str | None] = mapped_column(String(24))
    reasons: Mapped[list[str]] = mapped_column(JSONDocument)
    reason_detail: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(8))
    shared_categories: Mapped[list[str]] = mapped_column(JSONDocument)
    #: The consents it rests on: those the send relied on; once one of them ends while the
    #: receiver's consents still cover it, those (as on a resumption).
    consent_ids: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: Part C: the day the referral source identified the concern (due 7 days later).
    part_c_identified_on: Mapped[date | None]
    referral_due_by: Mapped[date | None]
    #: Part C: 45 days from delivery (`sent_at`, the service's day), pushed back by pauses
    #: once they end.
    timeline_due_by: Mapped[date | None]
    timeline_paused_since: Mapped[datetime | None]
    #: Part C: the time every ended pause lasted, together (whole seconds, each rounded up):
    #: the 45 days are pushed back by it in whole days, rounded up once.
    timeline_paused_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    sent_at: Mapped[datetime | None]
    #: The receiver's first move (its acknowledgement: `received_on`).
    received_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class ReferralEvent(db.Model):
    """One step of a referral's timeline: who moved it, when, where to, and why."""

    __tablename__ = "referral_events"
    __table_args__ = (
        one_of("to_status", STATUSES),
        sa.UniqueConstraint("referral_id", "referral_version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"))
    #: The referral's version this step made: the timeline's order, even within one instant.
    referral_version: Mapped[int]
    occurred_at: Mapped[datetime] = mapped_column(default=now)
    #: Null for the referral's creation.
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    business_status: Mapped[str | None] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(24))
    outcome: Mapped[str | None] = mapped_column(String(24))
    #: The side that acted; null when the service did (a consent ended).
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    client_id: Mapped[str | None] = mapped_column(String(64))
    #: The note written with the transition, if any.
    note_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("referral_notes.id"))


class ReferralNote(db.Model):
    """Free text one side writes about a referral; the other side reads it only by consent."""

    __tablename__ = "referral_notes"
    __table_args__ = (
        one_of("category", NOTE_CATEGORIES),
        sa.Index("ix_referral_notes_referral", "referral_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"))
    author_organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    category: Mapped[str] = mapped_column(String(24))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
