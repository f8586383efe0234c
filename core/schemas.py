"""Field types and base schemas shared by every domain's input and output schemas."""

import re
import unicodedata
from datetime import UTC, timedelta

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.time import rfc3339


class Pattern(validate.Regexp):
    """A regular expression the whole value must match. Regexp's own `match` stops where the
    pattern does, and its `$` also matches before a final line break: "+17345550101\\n" would
    pass as E.164. The pattern keeps its `^...$` for the OpenAPI document (ECMA-262, where `$`
    ends the string)."""

    def __call__(self, value):
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


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


class QueryInteger(fields.Integer):
    """A whole number in a query string, in ASCII digits: Python's int() would also read
    "5_0", "+5", " 5" and other scripts' digits ("٥") as numbers."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class Timestamp(fields.DateTime):
    """An instant rendered as RFC 3339 UTC with a Z suffix."""

    def _serialize(self, value, attr, obj, **kwargs):
        return rfc3339(value)


#: RFC 3339 section 5.6 `date-time`, whose "T" and "Z" may be lower case: ISO 8601's other
#: forms (basic, week dates, hours only, an offset without minutes) are not the contract's,
#: though Python's parser takes them.
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                        # An offset's minutes run 00-59 (Python reads +05:99 as +06:39).
                        r"([Zz]|[+-][0-9]{2}:[0-5][0-9])")
#: RFC 3339 `full-date`, the contract's YYYY-MM-DD.
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Instant(fields.AwareDateTime):
    """An RFC 3339 instant with its offset, between the years 1900 and 9000 (UTC)."""

    def _deserialize(self, value, attr, data, **kwargs):
        match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValidationError("Not an RFC 3339 date-time (e.g. 2026-03-02T09:30:00Z)")
        # Times are kept to the microsecond: a finer instant is read as the next microsecond
        # (Python's parser would cut it down), so that, as every stored time is a whole
        # microsecond, a bound lets in exactly the times its exact value does (`since`
        # inclusive, `until` exclusive).
        fraction = match.group(1) or ""
        finer = fraction[7:]
        if finer:
            value = value[:match.start(1)] + fraction[:7] + value[match.end(1):]
        instant = super()._deserialize(value.upper(), attr, data, **kwargs)
        try:
            if finer.strip("0"):
                instant += timedelta(microseconds=1)  # past 9999-12-31T23:59:59.999999
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


def unique_items(values):
    """Validate that a list has no duplicates."""
    if len({v.lower() if isinstance(v, str) else v for v in values}) != len(values):
        raise ValidationError("Items must be unique")


# -- language tags -----------------------------------------------------------------------------

def _anycase(word: str) -> str:
    """`word` (letters and hyphens) as a case-insensitive pattern without flags, which the
    OpenAPI document's ECMA-262 patterns cannot carry (and Python's re.IGNORECASE would let
    `[a-z]` match the Kelvin sign and the long s). A hyphen stays bare: `\\-` is an error in
    a Unicode-mode ECMA-262 pattern."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


_ALPHA, _DIGIT, _ALNUM = "[A-Za-z]", "[0-9]", "[A-Za-z0-9]"
#: RFC 5646 section 2.1 (`Language-Tag = langtag / privateuse / grandfathered`), the whole
#: ABNF, case-insensitive (2.1.1). Well-formed, not valid: subtags are not looked up in the
#: IANA registry, so a family's language without a registered subtag can still be written
#: (with a private-use `x-` subtag, as 2.2.7 intends).
_LANGTAG = (
    f"(?:{_ALPHA}{{2,3}}(?:-{_ALPHA}{{3}}){{0,3}}|{_ALPHA}{{4,8}})"   # language [-extlang]
    f"(?:-{_ALPHA}{{4}})?"                                           # script
    f"(?:-(?:{_ALPHA}{{2}}|{_DIGIT}{{3}}))?"                          # region
    f"(?:-(?:{_ALNUM}{{5,8}}|{_DIGIT}{_ALNUM}{{3}}))*"                # variant
    f"(?:-[0-9A-WYZa-wyz](?:-{_ALNUM}{{2,8}})+)*"                     # extension
    f"(?:-[xX](?:-{_ALNUM}{{1,8}})+)?"                                # privateuse
)
_PRIVATEUSE = f"[xX](?:-{_ALNUM}{{1,8}})+"
_GRANDFATHERED = (
    "en-GB-oed", "i-ami", "i-bnn", "i-default", "i-enochian", "i-hak", "i-klingon", "i-lux",
    "i-mingo", "i-navajo", "i-pwn", "i-tao", "i-tay", "i-tsu", "sgn-BE-FR", "sgn-BE-NL",
    "sgn-CH-DE", "art-lojban", "cel-gaulish", "no-bok", "no-nyn", "zh-guoyu", "zh-hakka",
    "zh-min", "zh-min-nan", "zh-xiang")
LANGUAGE_TAG = re.compile(f"^(?:{_LANGTAG}|{_PRIVATEUSE}|"
                          f"{'|'.join(_anycase(tag) for tag in _GRANDFATHERED)})$")
_TAG_ERROR = "Not a well-formed BCP 47 language tag (RFC 5646; e.g. en, es-MX, zh-Hant)"


def _repeats_a_subtag(tag: str) -> bool:
    """Whether a tag the grammar admits repeats a variant (RFC 5646 2.2.5) or an extension's
    singleton (2.2.6), which makes it ill-formed though no ABNF can say so."""
    subtags = tag.lower().split("-")
    if subtags[0] in ("x", "i") or tag.lower() in {t.lower() for t in _GRANDFATHERED}:
        return False
    if "x" in subtags:  # private use: anything goes after it
        subtags = subtags[:subtags.index("x")]
    singletons = [n for n, s in enumerate(subtags) if len(s) == 1]
    before_extensions = subtags[1:singletons[0]] if singletons else subtags[1:]
    variants = [s for s in before_extensions if len(s) >= 5 or (len(s) == 4 and s[0].isdigit())]
    named = [subtags[n] for n in singletons]
    return len(set(variants)) != len(variants) or len(set(named)) != len(named)


def canonical_case(tag: str) -> str:
    """A language tag in RFC 5646's canonical case (2.1.1): lower case but for a subtag after
    the first that follows no singleton, where two letters are upper case (a region) and four
    are title case (a script): `ES-mx` is `es-MX`, `ZH-hant` is `zh-Hant`."""
    subtags = tag.split("-")
    cased, after_singleton = [subtags[0].lower()], len(subtags[0]) == 1
    for subtag in subtags[1:]:
        if len(subtag) == 1:
            after_singleton = True
        if not after_singleton and len(subtag) == 2:
            cased.append(subtag.upper())
        elif not after_singleton and len(subtag) == 4 and subtag.isalpha():
            cased.append(subtag.title())
        else:
            cased.append(subtag.lower())
    return "-".join(cased)


class LanguageTag(fields.String):
    """A well-formed BCP 47 language tag (RFC 5646) of at most 35 characters, loaded in its
    canonical case: `ES-mx` is stored and shown as `es-MX`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", [validate.Length(max=35),
                                       Pattern(LANGUAGE_TAG, error=_TAG_ERROR)])
        kwargs.setdefault("metadata", {
            "description": "BCP 47 language tag, well-formed per RFC 5646 (private use `x-` "
                           "and extensions such as `u-nu-latn` included); case does not "
                           "matter, and it is kept in canonical case (`es-MX`, `zh-Hant`).",
            "example": "es"})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        # Checked before re-casing: upper() turns a long s into an ASCII S.
        if LANGUAGE_TAG.fullmatch(value) is None or _repeats_a_subtag(value):
            raise ValidationError(_TAG_ERROR)
        return canonical_case(value)


# -- text --------------------------------------------------------------------------------------

#: Control characters (C0, DEL and C1: terminal escapes such as CSI, U+009B, too) other than
#: tab, line feed, carriage return and NEL, which free text keeps as line breaks. A regex
#: character class's contents, for the OpenAPI document's patterns too.
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
#: What ends a line: CR, LF, NEL and Unicode's line and paragraph separators.
LINE_BREAKS = r"\r\n\x85\u2028\u2029"
_LINE_BREAK = re.compile(f"[{LINE_BREAKS}]")
#: Characters that show nothing though their category is neither Z nor C: the braille blank,
#: the Hangul fillers and the combining grapheme joiner.
_BLANK_GLYPHS = frozenset("\u2800\u115f\u1160\u3164\uffa0\u034f")


def no_control_characters(value: str) -> None:
    """Validate that a string holds no NUL or other control characters."""
    if _CONTROL.search(value):
        raise ValidationError("Must not contain control characters")


def one_line(value: str) -> None:
    """Validate that a string holds no line break."""
    if _LINE_BREAK.search(value):
        raise ValidationError("Must be one line, without line breaks")


def valid_unicode(value: str) -> None:
    """Validate that a string is Unicode a database stores: no unpaired surrogate, which is
    what Python makes of bytes that are not UTF-8 (an argument typed in a Latin-1 terminal;
    a JSON body's are refused as it is read)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Must be valid Unicode (no unpaired surrogates)") from None


def visible(value: str) -> None:
    """Validate that a string shows something: a character outside Unicode's separators (Z*)
    and others (C*: controls, format characters such as zero-width spaces, joiners and the
    BOM), and not a blank glyph. Whitespace alone, or a zero-width space, is not a name."""
    if not any(unicodedata.category(c)[0] not in "ZC" and c not in _BLANK_GLYPHS
               for c in value):
        raise ValidationError("Must not be blank")


class Text(fields.String):
    """A string normalized to Unicode NFC as it is loaded, so that one name has one spelling
    whichever keyboard typed it. A single-line field is also stripped of surrounding
    whitespace (never part of a name); a line break anywhere in it is refused."""

    def __init__(self, max_length: int, *, multiline: bool = False, **kwargs):
        self.max_length, self.multiline = max_length, multiline
        checks = [validate.Length(1, max_length), valid_unicode, visible, no_control_characters]
        super().__init__(validate=checks if multiline else [*checks, one_line], **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        # As sent, as the OpenAPI document bounds it; checked again once normalized (NFC
        # can lengthen a string), as the column bounds it.
        if len(value) > self.max_length:
            raise ValidationError(f"Longer than maximum length {self.max_length}.")
        if not self.multiline:
            one_line(value)  # before stripping: a trailing line break is a wrong mapping
            value = value.strip()
        return unicodedata.normalize("NFC", value)


def text(max_length: int, *, multiline: bool = False, **kwargs) -> Text:
    """A visible string of at most `max_length` characters without control characters,
    normalized to NFC; one line, stripped, unless `multiline` (free text in someone's own
    words, whose line breaks are kept)."""
    return Text(max_length, multiline=multiline, **kwargs)
