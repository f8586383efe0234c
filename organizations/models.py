"""A partner agency in the network's directory."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import String, orm
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db, one_of
from core.ids import new_id
from core.sqltypes import JSONDocument
from core.text import name_key, search_key
from core.time import now

ORGANIZATION_TYPES = (
    "imh_provider",
    "pediatric_primary_care",
    "child_welfare",
    "early_intervention",
    "home_visiting",
    "early_head_start",
    "hospital",
    "community_other",
)
CAPACITY_STATUSES = ("available", "waitlist", "full")
WAITLISTS = ("lt_1_month", "1_3_months", "gt_3_months", "unknown")
#: The type of `name_key`. A PostgreSQL database's default collation (an ICU or glibc `en`
#: locale on many installations) would sort `_Care` before `100 Acres` and `Éclair` among the
#: E names; "C" compares code points, as SQLite and Python's `sorted` do.
NAME_KEY = String(200).with_variant(String(200, collation="C"), "postgresql")


class Organization(db.Model):
    """A partner agency: who it is, where it serves, in which languages, and its capacity."""

    __tablename__ = "organizations"
    __table_args__ = (
        one_of("type", ORGANIZATION_TYPES),
        one_of("capacity_status", CAPACITY_STATUSES),
        one_of("capacity_waitlist", WAITLISTS),
        sa.Index("ix_organizations_name_key_id", "name_key", "id"),
        # One entry per name and type: what `org create`'s duplicate check compares, held
        # by the database against two runs at once (migration 0015).
        sa.Index("uq_organizations_name_key_type", "name_key", "type", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    #: The name case-folded (`name_key`): the directory's order, the same whatever the
    #: database's collation.
    #: Compared by code point: PostgreSQL's "C" collation, SQLite's own BINARY.
    name_key: Mapped[str] = mapped_column(NAME_KEY)
    #: The name as `q` searches it (`search_key`): folded, accents left out.
    search_key: Mapped[str] = mapped_column(sa.Text, server_default="")
    type: Mapped[str] = mapped_column(String(40))
    #: Counties served, as the organization names them (stripped, NFC).
    counties: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: Languages services are offered in, as BCP 47 tags in canonical case (`en`, `es-MX`,
    #: `zh-Hant`).
    languages: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: A new organization does not accept referrals until it says so.
    accepting_referrals: Mapped[bool] = mapped_column(default=False)
    #: Null until the organization first reports its capacity.
    capacity_status: Mapped[str | None] = mapped_column(String(20))
    capacity_waitlist: Mapped[str | None] = mapped_column(String(20))
    capacity_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    #: Bumped on every change; names the ETag and guards concurrent updates.
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    @orm.validates("name")
    def _set_name_key(self, key, name):
        self.name_key = name_key(name)
        self.search_key = search_key(name)
        return name

    @property
    def capacity(self) -> dict | None:
        return capacity_of(self.capacity_status, self.capacity_waitlist,
                           self.capacity_updated_at)


def capacity_of(status: str | None, waitlist: str | None, updated_at) -> dict | None:
    """The capacity a directory entry shows; None until the organization first reports it."""
    if status is None:
        return None
    return {"status": status, "waitlist": waitlist, "updated_at": updated_at}


#: The columns a directory entry shows, in its order.
ENTRY_COLUMNS = ("id", "name", "type", "counties", "languages", "accepting_referrals")


def directory_entry(row) -> dict:
    """A directory entry from a row of ENTRY_COLUMNS and the three capacity columns."""
    entry = {name: row[name] for name in ENTRY_COLUMNS}
    entry["capacity"] = capacity_of(row["capacity_status"], row["capacity_waitlist"],
                                    row["capacity_updated_at"])
    return entry
