"""Part C's 45 days run from the referral being received by the provider, that is delivered
to it (`sent_at`), no longer from the provider's first move (`received_at`): a provider
acknowledging on day 44 got almost 90 days, and a late referral acknowledged left the overdue
list (a review). `received_at` stays the acknowledgement.

Every sent Part C referral, open or closed (its due day says whether it was served in time),
is recounted from the day it was delivered in TIME_ZONE:

- never acknowledged (`received_at` null): the day of delivery + 45, where it had none;
- acknowledged: earlier by the days between delivery and acknowledgement, its pauses kept as
  counted (the seconds of pauses from before 0010 cannot be told apart);
- a pause still open that began after the recounted day is no pause: a clock that has run out
  cannot be paused (referrals.service._move_part_c_clock), so it is ended uncounted and the
  referral is overdue again.

A row that changes takes a new version (its ETag names what it shows) and is changed now
(`updated_at`: a partner following `updated_since` learns of it). Drafts have no clock yet.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

#: referrals.service.TIMELINE_DAYS at this revision.
TIMELINE_DAYS = timedelta(days=45)
BATCH = 500

_referrals = sa.table("referrals", sa.column("id", sa.Uuid()),
                      sa.column("part_c_identified_on", sa.Date()),
                      sa.column("sent_at", sa.DateTime(timezone=True)),
                      sa.column("received_at", sa.DateTime(timezone=True)),
                      sa.column("timeline_due_by", sa.Date()),
                      sa.column("timeline_paused_since", sa.DateTime(timezone=True)),
                      sa.column("version", sa.Integer()),
                      sa.column("updated_at", sa.DateTime(timezone=True)))


def _time_zone() -> ZoneInfo:
    """The service's TIME_ZONE, as the application it migrates for has it (0016's)."""
    try:
        from flask import current_app

        return ZoneInfo(current_app.config["TIME_ZONE"])
    except (RuntimeError, KeyError):  # outside an application: the environment's, or its default
        return ZoneInfo(os.environ.get("TIME_ZONE") or "America/Detroit")


def _utc(instant):
    """SQLite hands timestamps back naive (stored in UTC)."""
    if instant is None:
        return None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _recounted(row, zone: ZoneInfo) -> tuple:
    """The referral's due day and open pause counted from its delivery."""
    delivered_on = _utc(row.sent_at).astimezone(zone).date()
    if row.received_at is None or row.timeline_due_by is None:
        return delivered_on + TIMELINE_DAYS, None
    received_on = _utc(row.received_at).astimezone(zone).date()
    due = row.timeline_due_by - (received_on - delivered_on)
    paused_since = _utc(row.timeline_paused_since)
    if paused_since is not None and paused_since.astimezone(zone).date() > due:
        paused_since = None
    return due, paused_since


def upgrade():
    zone, bind = _time_zone(), op.get_bind()
    changed_at = datetime.now(UTC)
    after = None
    while True:
        stmt = (sa.select(_referrals)
                .where(_referrals.c.part_c_identified_on.is_not(None),
                       _referrals.c.sent_at.is_not(None))
                .order_by(_referrals.c.id).limit(BATCH))
        if after is not None:
            stmt = stmt.where(_referrals.c.id > after)
        rows = bind.execute(stmt).all()
        if not rows:
            return
        after = rows[-1].id
        for row in rows:
            due, paused_since = _recounted(row, zone)
            if (due, paused_since) != (row.timeline_due_by, _utc(row.timeline_paused_since)):
                bind.execute(_referrals.update().where(_referrals.c.id == row.id).values(
                    timeline_due_by=due, timeline_paused_since=paused_since,
                    version=row.version + 1, updated_at=changed_at))


def downgrade():
    """The dates stay as counted here: counted from acknowledgement they were wrong."""
