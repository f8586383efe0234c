"""Field types and base schemas shared by every domain's input and output schemas."""

import re
from datetime import UTC

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.time import rfc3339

#: BCP 47 language tag, simplified: language, optional script/region/variants.
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class InputSchema(Schema):
    """A request body or query: unknown fields are errors, never ignored."""

    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """JSON true or false only; no "yes", 1 or "on"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):  # 1 == True in a set lookup; refuse it here
            raise self.make_error("invalid", input=value)
        return value


class QueryBoolean(fields.Boolean):
    """`true` or `false` in a query string."""

    truthy = {"true"}
    falsy = {"false"}


class Timestamp(fields.DateTime):
    """An instant rendered as RFC 3339 UTC with a Z suffix."""

    def _serialize(self, value, attr, obj, **kwargs):
        return rfc3339(value)


#: RFC 3339 section 5.6 `date-time`, whose "T" and "Z" may be lower case: ISO 8601's other
#: forms (basic, week dates, hours only, an offset without minutes) are not the contract's,
#: though Python's parser takes them.
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                        r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
#: RFC 3339 `full-date`, the contract's YYYY-MM-DD.
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Instant(fields.AwareDateTime):
    """An RFC 3339 instant with its offset, between the years 1900 and 9000 (UTC)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
            raise ValidationError("Not an RFC 3339 date-time (e.g. 2026-03-02T09:30:00Z)")
        instant = super()._deserialize(value.upper(), attr, data, **kwargs)
        try:
            year = instant.astimezone(UTC).year
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first UTC instant
            raise ValidationError("Out of range: give an instant between 1900 and 9000") \
                from None
        if not 1900 <= year <= 9000:
            raise ValidationError("Out of range: give an instant between 1900 and 9000")
        return instant


class CalendarDate(fields.Date):
    """A calendar date written YYYY-MM-DD, and no other ISO 8601 form."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
            raise ValidationError("Not a date written YYYY-MM-DD")
        return super()._deserialize(value, attr, data, **kwargs)


class LanguageTag(fields.String):
    """A BCP 47 language tag such as `en`, `es` or `zh-Hant` (at most 35 characters)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", [
            validate.Length(max=35),
            validate.Regexp(_LANGUAGE_TAG, error="Not a BCP 47 language tag (e.g. en, es, "
                                                 "zh-Hant)")])
        kwargs.setdefault("metadata", {"description": "BCP 47 language tag", "example": "es"})
        super().__init__(**kwargs)


def unique_items(values):
    """Validate that a list has no duplicates."""
    if len({v.lower() if isinstance(v, str) else v for v in values}) != len(values):
        raise ValidationError("Items must be unique")


#: Control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control_characters(value: str) -> None:
    """Validate that a string holds no NUL or other control characters."""
    if _CONTROL.search(value):
        raise ValidationError("Must not contain control characters")


#: Something visible somewhere. Regexp matches at the start of the value: `\s*` lets
#: " Okafor" through, not "   ". (The OpenAPI document states it in full: openapi/spec.py.)
NOT_BLANK = r"\s*\S"


def text(max_length: int, **kwargs) -> fields.String:
    """A non-blank string of at most `max_length` characters, without control characters."""
    return fields.String(
        validate=[validate.Length(1, max_length),
                  validate.Regexp(NOT_BLANK, error="Must not be blank"), no_control_characters],
        **kwargs,
    )
