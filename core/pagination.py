"""Keyset pagination with opaque cursors the service signs, so forged ones are refused."""

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from marshmallow import Schema, fields, validate
from sqlalchemy import orm

from core.db import db
from core.errors import validation_problem
from core.schemas import QueryInteger

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: Room for the longest keyset a cursor carries: the directory's is an organization's name
#: key (200 characters, case-folded, escaped and signed: about 1,600 characters at most).
MAX_CURSOR = 4096


class PageQuery(Schema):
    """`limit` and `cursor`, shared by every list endpoint's query schema."""

    limit = QueryInteger(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": f"Page size, 1 to {MAX_LIMIT}."},
    )
    cursor = fields.String(
        # What the service issues: URL-safe base64 and dots, so a cursor always fits the
        # request line (a non-ASCII one takes up to 12 bytes a character there).
        validate=[validate.Length(1, MAX_CURSOR), validate.Regexp(r"\A[A-Za-z0-9_.\-]+\Z")],
        metadata={"description": "Opaque cursor from a previous page's `next_cursor`.",
                  "pattern": "^[A-Za-z0-9_.\\-]+$"},
    )


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """An output schema `{"items": [...], "next_cursor": ...}` for one item schema."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(
                allow_none=True, required=True,
                metadata={"description": "Cursor of the next page; null on the last page."},
            ),
        },
        name=name,
    )


@dataclass
class Page:
    items: list
    next_cursor: str | None


def _serializer(kind: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"cursor:{kind}")


def decode_cursor(kind: str, cursor: str | None, arity: int) -> list | None:
    """The keyset values inside a cursor this service issued for `kind`; 422 otherwise."""
    if cursor is None:
        return None
    serializer = _serializer(kind)
    try:
        values = serializer.loads(cursor)
    except BadSignature:
        raise validation_problem({"cursor": ["Not a cursor issued by this service"]}) from None
    # base64 ignores the unused low bits of its last character, so several strings decode to
    # one signed cursor: only the one the service would write is a cursor it issued.
    issued = serializer.dumps(values)
    if not hmac.compare_digest(issued.encode(), cursor.encode()) \
            or not isinstance(values, list) or len(values) != arity:
        raise validation_problem({"cursor": ["Not a cursor issued by this service"]})
    return values


def keyset_page(stmt, *, kind: str, order: list, cursor: str | None, limit: int,
                descending: bool = False, encode=None, decode=None) -> Page:
    """Run `stmt` ordered by `order` columns from after the cursor's position.

    `stmt` may be a list of statements over one entity whose rows are disjoint (a referral's
    sent and received sides): each is read in order on its own, and their first rows merged,
    so each can walk its own index where one `OR` of them would read and sort every row.
    `encode(row) -> list` gives the JSON-safe keyset values of a row; `decode(list) -> list`
    turns them back into column values.
    """
    values = decode_cursor(kind, cursor, len(order))
    parts = list(stmt) if isinstance(stmt, list | tuple) else [stmt]
    if values is not None:
        if decode is not None:
            try:
                values = decode(values)
            except (TypeError, ValueError):
                raise validation_problem(
                    {"cursor": ["Not a cursor issued by this service"]}) from None
        position = sa.tuple_(*order)
        bound = sa.tuple_(*[sa.literal(v, c.type) for v, c in zip(values, order, strict=True)])
        parts = [part.where(position < bound if descending else position > bound)
                 for part in parts]

    def ordering(columns):
        return [c.desc() for c in columns] if descending else [c.asc() for c in columns]

    if len(parts) == 1:
        query = parts[0].order_by(*ordering(order)).limit(limit + 1)
    else:
        # Each part in a subquery of its own: SQLite takes no ORDER BY in a compound's member.
        merged = sa.union_all(*(
            sa.select(part.order_by(*ordering(order)).limit(limit + 1).subquery())
            for part in parts)).subquery()
        entity = orm.aliased(parts[0].column_descriptions[0]["entity"], merged)
        query = (sa.select(entity).order_by(*ordering([merged.c[c.key] for c in order]))
                 .limit(limit + 1))
    rows = list(db.session.scalars(query))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _serializer(kind).dumps(encode(rows[-1]))
    return Page(items=rows, next_cursor=next_cursor)


def newest_first(stmt, *, kind: str, at, id, cursor: str | None, limit: int) -> Page:  # noqa: A002
    """Keyset pages of `stmt`, newest first by the columns `at` (a timestamp) and `id` (a
    UUID, breaking ties)."""
    at_name, id_name = at.key, id.key
    return keyset_page(
        stmt, kind=kind, order=[at, id], cursor=cursor, limit=limit, descending=True,
        encode=lambda row: [getattr(row, at_name).isoformat(), str(getattr(row, id_name))],
        decode=lambda values: [datetime.fromisoformat(values[0]), uuid.UUID(values[1])])
