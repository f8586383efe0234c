"""The clock. Everything asks `now()`, so tests can move time without sleeping."""

from datetime import UTC, datetime

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
