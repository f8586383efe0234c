"""Part C's 45 days are counted from the day a referral was received in the service's time
zone (TIME_ZONE), no longer from its UTC date: a referral received in a Michigan evening had
its clock run a day long. Each running clock (an open referral's, received) moves by the
days between the two (its pauses, some counted before 0010 kept no record of, stay as they
are); a closed referral's stays as it was. A row that changes takes a new version (its ETag
names what it shows) and is changed now (`updated_at`: a partner following `updated_since`
learns of it).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10
"""

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_referrals = sa.table("referrals", sa.column("id", sa.Uuid()),
                      sa.column("received_at", sa.DateTime(timezone=True)),
                      sa.column("timeline_due_by", sa.Date()),
                      sa.column("version", sa.Integer()),
                      sa.column("status", sa.String()),
                      sa.column("updated_at", sa.DateTime(timezone=True)))
#: Where the 45 days still run (referrals.service._TIMELINE_STATUSES at this revision).
_RUNNING = ("received", "accepted", "in_progress", "on_hold")


def _time_zone() -> ZoneInfo:
    """The service's TIME_ZONE, as the application it migrates for has it."""
    try:
        from flask import current_app

        return ZoneInfo(current_app.config["TIME_ZONE"])
    except (RuntimeError, KeyError):  # outside an application: the environment's, or its default
        return ZoneInfo(os.environ.get("TIME_ZONE") or "America/Detroit")


def upgrade():
    zone, bind = _time_zone(), op.get_bind()
    rows = bind.execute(sa.select(_referrals).where(
        _referrals.c.received_at.is_not(None), _referrals.c.timeline_due_by.is_not(None),
        _referrals.c.status.in_(_RUNNING))).all()
    changed_at = datetime.now(UTC)
    for row in rows:
        received_at = row.received_at if row.received_at.tzinfo else \
            row.received_at.replace(tzinfo=UTC)
        shift = received_at.astimezone(zone).date() - received_at.astimezone(UTC).date()
        due = row.timeline_due_by + shift
        if shift:
            bind.execute(_referrals.update().where(_referrals.c.id == row.id)
                         .values(timeline_due_by=due, version=row.version + 1,
                                 updated_at=changed_at))


def downgrade():
    """The dates stay as counted here: a day's difference is not worth a second guess."""
