"""A family record: the child, the caregivers, and how the family wants to be reached."""

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy import ForeignKey, String, Text, orm
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db, one_of
from core.ids import new_id
from core.sqltypes import JSONDocument
from core.text import name_key
from core.time import now

RELATIONSHIPS = ("mother", "father", "grandparent", "foster_parent", "legal_guardian",
                 "kinship_caregiver", "other")
#: Caregivers who may hold legal authority for the child, but never as its parent: as a
#: guardian, or by a court. (`other` may be a parent in the family's own words.)
NOT_PARENTS = ("grandparent", "foster_parent", "legal_guardian", "kinship_caregiver")
CONTACT_METHODS = ("phone", "text", "email", "mail", "in_person")


def child_name_key(given_name: str, family_name: str) -> str:
    """What two intakes of one child share however its names were typed: each name's
    `name_key` (case, Unicode form, invisible characters and spacing aside), joined by a line
    break, which no name holds."""
    return f"{name_key(given_name)}\n{name_key(family_name)}"


class Family(db.Model):
    """Held by its custodian, the organization that created it; others see it only by consent."""

    __tablename__ = "families"
    __table_args__ = (
        # The custodian's list, most recently changed first (and its `updated_since`).
        sa.Index("ix_families_custodian_updated", "custodian_organization_id", "updated_at", "id"),
        # Its duplicate check.
        sa.Index("ix_families_custodian_child", "custodian_organization_id",
                 "child_birth_date", "child_name_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    custodian_organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    child_given_name: Mapped[str] = mapped_column(String(100))
    child_family_name: Mapped[str] = mapped_column(String(100))
    child_birth_date: Mapped[date]
    child_county: Mapped[str | None] = mapped_column(String(100))
    #: The child's names as the duplicate check compares them (`child_name_key`).
    child_name_key: Mapped[str] = mapped_column(Text, server_default="")
    #: BCP 47 tag of the language the family prefers.
    preferred_language: Mapped[str | None] = mapped_column(String(35))
    interpreter_needed: Mapped[bool] = mapped_column(default=False)
    #: In the family's own words; never forced into a category.
    cultural_considerations: Mapped[str | None] = mapped_column(Text)
    do_not_contact: Mapped[bool] = mapped_column(default=False)
    contact_methods: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    contact_best_times: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    version: Mapped[int] = mapped_column(default=1)

    caregivers: Mapped[list["Caregiver"]] = orm.relationship(
        back_populates="family", cascade="all, delete-orphan", order_by="Caregiver.position",
        lazy="selectin")

    __mapper_args__ = {"version_id_col": version}

    @orm.validates("child_given_name", "child_family_name")
    def _set_child_name_key(self, key, name):
        given, family = ((name, self.child_family_name) if key == "child_given_name"
                         else (self.child_given_name, name))
        self.child_name_key = child_name_key(given or "", family or "")
        return name

    @property
    def child(self) -> dict:
        return {"given_name": self.child_given_name, "family_name": self.child_family_name,
                "birth_date": self.child_birth_date, "county": self.child_county}

    @property
    def contact_preferences(self) -> dict:
        return {"do_not_contact": self.do_not_contact, "methods": self.contact_methods,
                "best_times": self.contact_best_times}


class Caregiver(db.Model):
    """An adult who cares for the child; only one with legal authority can grant consent."""

    __tablename__ = "caregivers"
    __table_args__ = (
        one_of("relationship", RELATIONSHIPS),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("families.id"), index=True)
    #: Order in the family record, as the custodian gave it.
    position: Mapped[int] = mapped_column(default=0)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    relationship: Mapped[str] = mapped_column(String(32))
    #: Who the caregiver is, in the family's own words (`godmother`), beside the code.
    relationship_description: Mapped[str | None] = mapped_column(String(200))
    #: Parent, legal guardian, or court-appointed: may consent for the child.
    has_legal_authority: Mapped[bool] = mapped_column(default=False)
    #: E.164.
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))

    family: Mapped[Family] = orm.relationship(back_populates="caregivers")
