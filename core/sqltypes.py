"""Portable SQL for the few places SQLite and PostgreSQL differ."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

#: A JSON document: jsonb on PostgreSQL, JSON text on SQLite.
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


class json_array_contains_ci(FunctionElement):  # noqa: N801 (a SQL function's name)
    """True when a JSON array of strings holds `value`, ignoring case."""

    type = sa.Boolean()
    inherit_cache = True
    name = "json_array_contains_ci"


@compiles(json_array_contains_ci, "postgresql")
def _contains_postgresql(element, compiler, **kw):
    column, value = (compiler.process(c, **kw) for c in element.clauses)
    # Both operands are compiled SQL (a column and a bound parameter), never user text.
    return (f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}) AS e(v) "  # noqa: S608
            f"WHERE lower(e.v) = lower({value}))")


@compiles(json_array_contains_ci, "sqlite")
def _contains_sqlite(element, compiler, **kw):
    column, value = (compiler.process(c, **kw) for c in element.clauses)
    return (f"EXISTS (SELECT 1 FROM json_each({column}) AS e "  # noqa: S608
            f"WHERE lower(e.value) = lower({value}))")


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` casefolded anywhere, with LIKE's wildcards escaped
    (escape '\\'): for a column holding casefolded text."""
    folded = text.casefold()
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
