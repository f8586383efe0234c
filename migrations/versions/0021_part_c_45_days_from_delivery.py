"""Part C's 45 days run from the referral being received by the provider, that is delivered
to it (`sent_at`), no longer from the provider's first move (`received_at`): a provider
acknowledging on day 44 got almost 90 days, and a late referral acknowledged left the overdue
list (a review). `received_at` stays the acknowledgement.

Every sent Part C referral, open or closed (its due day says whether it was served in time),
is recounted from the day it was delivered in TIME_ZONE:

- never acknowledged (`received_at` null): the day of delivery + 45, where it had none;
- acknowledged, where replaying its timeline as the service counted (from acknowledgement)
  gives its stored day, open pause and paused seconds: the timeline replayed from delivery,
  so a pause begun after the recounted day, ended or not, counts for nothing (a clock that
  has run out cannot be paused, referrals.service._move_part_c_clock);
- acknowledged, with a timeline that does not give its stored clock (one written under an
  older rule): earlier by the days between delivery and acknowledgement, its paused seconds
  kept, and an open pause begun after the recounted day ended uncounted.

A row that changes takes a new version (its ETag names what it shows) and is changed now
(`updated_at`: a partner following `updated_since` learns of it). Drafts have no clock yet.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import os
from datetime import UTC, datetime, timedelta
from math import ceil
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

#: As referrals/models.py and referrals/service.py have them at this revision.
TIMELINE_DAYS = timedelta(days=45)
PAUSING_HOLD_REASONS = ("family_circumstances", "awaiting_consent")
BATCH = 500

_referrals = sa.table("referrals", sa.column("id", sa.Uuid()),
                      sa.column("part_c_identified_on", sa.Date()),
                      sa.column("sent_at", sa.DateTime(timezone=True)),
                      sa.column("received_at", sa.DateTime(timezone=True)),
                      sa.column("timeline_due_by", sa.Date()),
                      sa.column("timeline_paused_since", sa.DateTime(timezone=True)),
                      sa.column("timeline_paused_seconds", sa.Integer()),
                      sa.column("version", sa.Integer()),
                      sa.column("updated_at", sa.DateTime(timezone=True)))
_steps = sa.table("referral_events", sa.column("referral_id", sa.Uuid()),
                  sa.column("referral_version", sa.Integer()),
                  sa.column("occurred_at", sa.DateTime(timezone=True)),
                  sa.column("to_status", sa.String()), sa.column("reason", sa.String()),
                  sa.column("organization_id", sa.Uuid()))


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


def _replay(steps, since, zone: ZoneInfo) -> tuple:
    """referrals.service._move_part_c_clock over the sides' moves (a hold the service put on
    when a consent ended leaves the clock as it is), the 45 days counted from `since`: the
    due day, the open pause and the seconds paused in all."""
    due, paused_since, paused = since.astimezone(zone).date() + TIMELINE_DAYS, None, 0
    for at, to, reason in steps:
        if at < since:
            continue
        pausing = to == "on_hold" and reason in PAUSING_HOLD_REASONS
        if paused_since is not None and not pausing:
            before = _whole_days(paused)
            paused += ceil((at - paused_since).total_seconds())
            due += timedelta(days=_whole_days(paused) - before)
            paused_since = None
        elif paused_since is None and pausing and due >= at.astimezone(zone).date():
            paused_since = at
    return due, paused_since, paused


def _whole_days(seconds: int) -> int:
    return ceil(seconds / 86400)


def _recounted(row, steps, zone: ZoneInfo) -> tuple:
    """The referral's due day, open pause and seconds paused, counted from its delivery."""
    delivered_at = _utc(row.sent_at)
    delivered_on = delivered_at.astimezone(zone).date()
    if row.received_at is None or row.timeline_due_by is None:
        return delivered_on + TIMELINE_DAYS, None, row.timeline_paused_seconds
    received_at = _utc(row.received_at)
    stored = (row.timeline_due_by, _utc(row.timeline_paused_since), row.timeline_paused_seconds)
    if _replay(steps, received_at, zone) == stored:
        return _replay(steps, delivered_at, zone)
    due = row.timeline_due_by - (received_at.astimezone(zone).date() - delivered_on)
    paused_since = _utc(row.timeline_paused_since)
    if paused_since is not None and paused_since.astimezone(zone).date() > due:
        paused_since = None
    return due, paused_since, row.timeline_paused_seconds


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
        steps = {}
        for step in bind.execute(
                sa.select(_steps.c.referral_id, _steps.c.occurred_at, _steps.c.to_status,
                          _steps.c.reason)
                .where(_steps.c.referral_id.in_([r.id for r in rows]),
                       _steps.c.organization_id.is_not(None))
                .order_by(_steps.c.referral_id, _steps.c.referral_version)):
            steps.setdefault(step.referral_id, []).append(
                (_utc(step.occurred_at), step.to_status, step.reason))
        for row in rows:
            due, paused_since, paused = _recounted(row, steps.get(row.id, []), zone)
            if (due, paused_since, paused) != (row.timeline_due_by,
                                               _utc(row.timeline_paused_since),
                                               row.timeline_paused_seconds):
                bind.execute(_referrals.update().where(_referrals.c.id == row.id).values(
                    timeline_due_by=due, timeline_paused_since=paused_since,
                    timeline_paused_seconds=paused, version=row.version + 1,
                    updated_at=changed_at))


def downgrade():
    """The dates stay as counted here: counted from acknowledgement they were wrong."""
