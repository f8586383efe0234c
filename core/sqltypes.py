"""Portable SQL for the few places SQLite and PostgreSQL differ."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

#: A JSON document: jsonb on PostgreSQL, JSON text on SQLite.
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


class _json_array_holds(FunctionElement):  # noqa: N801 (a SQL function's name)
    """True when a JSON array of strings holds, ignoring case, one of the values, or a string
    matching the LIKE pattern (escape '\\'; NULL: none). Arguments: the array, the pattern,
    then the values."""

    type = sa.Boolean()
    inherit_cache = True
    name = "json_array_holds"


def _holds(element, compiler, elements: str, value: str, **kw) -> str:
    column, pattern, *values = (compiler.process(c, **kw) for c in element.clauses)
    # Every operand is compiled SQL (a column and bound parameters), never user text.
    return (f"EXISTS (SELECT 1 FROM {elements.format(column)} "  # noqa: S608
            f"WHERE lower({value}) IN ({', '.join(f'lower({v})' for v in values)}) "
            f"OR lower({value}) LIKE {pattern} ESCAPE '\\')")


@compiles(_json_array_holds, "postgresql")
def _holds_postgresql(element, compiler, **kw):
    return _holds(element, compiler, "jsonb_array_elements_text({}) AS e(v)", "e.v", **kw)


@compiles(_json_array_holds, "sqlite")
def _holds_sqlite(element, compiler, **kw):
    return _holds(element, compiler, "json_each({}) AS e", "e.value", **kw)


def json_array_contains_ci(column, value: str):
    """True when a JSON array of strings holds `value`, ignoring case."""
    return _json_array_holds(column, sa.null(), value)


def json_array_holds_tag(column, tag: str):
    """Whether a JSON array of BCP 47 language tags offers `tag` in one of its variants,
    ignoring case: the tag itself or a more specific one (RFC 4647 3.3.1 basic filtering:
    `es` finds `es-MX` and `es-419`), or one it falls back to (3.4 lookup: `es-MX` finds
    plain `es`, whose speakers serve Mexican Spanish too, but not `es-ES`)."""
    subtags = tag.lower().split("-")
    fallbacks = ["-".join(subtags[:end]) for end in range(len(subtags), 0, -1)]
    return _json_array_holds(column, f"{_escape_like(fallbacks[0])}-%", *fallbacks)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's wildcards escaped (escape '\\'):
    give it keyed as the column is (a column of casefolded text, a casefolded `text`)."""
    return f"%{_escape_like(text)}%"


def _escape_like(text: str) -> str:
    """`text` with LIKE's wildcards and the escape character escaped (escape '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
