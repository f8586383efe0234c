"""A family's consent: who may share what with whom, why, and until when."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import ForeignKey, String, orm
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db, one_of
from core.ids import new_id
from core.sqltypes import JSONDocument
from core.time import now

LEGAL_AUTHORITIES = ("parent", "legal_guardian", "court_appointed")
METHODS = ("written", "electronic_signature", "verbal_witnessed")
REQUESTERS = ("caregiver", "organization")


class Consent(db.Model):
    """Recorded once and never edited: a change is a revocation plus a new consent."""

    __tablename__ = "consents"
    __table_args__ = (
        one_of("grantor_legal_authority", LEGAL_AUTHORITIES, name="legal_authority"),
        one_of("method", METHODS),
        sa.CheckConstraint("expires_at > effective_at", name="expires_after_effective"),
        sa.CheckConstraint("revocation_rights_explained", name="revocation_rights_explained"),
        sa.Index("ix_consents_family_expires", "family_id", "expires_at"),
        # Removing a caregiver asks whether a consent names them, and the database checks
        # both foreign keys as the row goes: without these, each is a scan of every consent
        # ever recorded (they are kept for years).
        sa.Index("ix_consents_grantor_caregiver_id", "grantor_caregiver_id"),
        sa.Index("ix_consents_revocation_caregiver_id", "revocation_caregiver_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("families.id"))
    grantor_caregiver_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("caregivers.id"))
    grantor_legal_authority: Mapped[str] = mapped_column(String(20))
    purposes: Mapped[list[str]] = mapped_column(JSONDocument)
    categories: Mapped[list[str]] = mapped_column(JSONDocument)
    effective_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    method: Mapped[str] = mapped_column(String(24))
    signed_at: Mapped[datetime]
    #: BCP 47 tag of the language the consent was explained in.
    explained_in_language: Mapped[str] = mapped_column(String(35))
    interpreter_used: Mapped[bool]
    revocation_rights_explained: Mapped[bool]
    recorded_by_organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=now)
    #: How many organizations it names: the database refuses a party row past this many, so
    #: none can be added to a consent once recorded (migration 0011).
    party_count: Mapped[int]
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(1000))
    revocation_requested_by: Mapped[str | None] = mapped_column(String(16))
    revocation_caregiver_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("caregivers.id"))
    revoked_by_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id"))

    parties: Mapped[list["ConsentParty"]] = orm.relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ConsentParty.position")

    @property
    def organization_ids(self) -> list[uuid.UUID]:
        return [party.organization_id for party in self.parties]

    @property
    def grantor(self) -> dict:
        return {"caregiver_id": self.grantor_caregiver_id,
                "legal_authority": self.grantor_legal_authority}

    def status_at(self, at: datetime) -> str:
        """`revoked`, `pending` (not yet effective), `expired` or `active` at instant `at`."""
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if at < self.effective_at:
            return "pending"
        if at >= self.expires_at:
            return "expired"
        return "active"  # the same instants as consent.policy.in_force

    @property
    def version(self) -> int:
        """1 as recorded, 2 once revoked: the only change a consent ever makes."""
        return 1 if self.revoked_at is None else 2


class ConsentParty(db.Model):
    """An organization a consent names; the named organizations may share with each other."""

    __tablename__ = "consent_parties"
    __table_args__ = (
        # The engine's one query starts here: consents naming this organization for this family.
        sa.Index("ix_consent_parties_organization_family", "organization_id", "family_id"),
    )

    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consents.id"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"),
                                                       primary_key=True)
    #: Denormalized from the consent so the engine's lookup is one index range.
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("families.id"))
    #: Order as the consent named them.
    position: Mapped[int] = mapped_column(default=0)
