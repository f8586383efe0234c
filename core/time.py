"""The clock. Everything asks `now()`, so tests can move time without sleeping; days (a
Part C deadline, "not in the future" for a date) are counted in the service's TIME_ZONE."""

import os
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

#: TIME_ZONE's default: the network's counties are Michigan's.
DEFAULT_TIME_ZONE = "America/Detroit"

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Pin the clock at `at` (aware), or release it with None. For tests."""
    global _frozen
    if at is not None and at.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    _frozen = at


def rfc3339(value: datetime | None) -> str | None:
    """Render an instant as RFC 3339 in UTC with a Z suffix."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def zone():
    """The service's time zone (TIME_ZONE): the one its days are counted in; outside an
    application (a bare script), the environment's, or the default, as configuration has it."""
    if has_app_context():
        return ZoneInfo(current_app.config["TIME_ZONE"])
    return ZoneInfo(os.environ.get("TIME_ZONE", "").strip() or DEFAULT_TIME_ZONE)


def local_date(instant: datetime) -> date:
    """The calendar day `instant` falls on in the service's time zone: a referral received at
    22:30 in Michigan was received that day, not the next (as in UTC)."""
    return instant.astimezone(zone()).date()


def today() -> date:
    """The service's calendar day now."""
    return local_date(now())


def start_of(day: date) -> datetime:
    """The first instant of a calendar day in the service's time zone."""
    return datetime.combine(day, time.min, tzinfo=zone())
