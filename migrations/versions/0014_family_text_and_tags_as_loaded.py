"""Family and directory text is kept as the service now loads it; caregivers say who they are;
the family list walks its custodian's changes.

- `caregivers.relationship_description`: who a caregiver is in the family's own words.
- The custodian's family list is ordered by `updated_at` (its `updated_since` filter's
  column): `ix_families_custodian_updated` replaces `ix_families_custodian_created`.
- Stored values are brought to what the API now stores, so that they compare with what it
  is sent: names, counties and `best_times` in Unicode NFC without surrounding spaces
  (`cultural_considerations` in NFC), language tags in RFC 5646 canonical case, a
  listing's counties without a repeat, and the directory's `name_key` recomputed from the
  NFC name (a decomposed "Clínica" was not found by a composed `q`). A row that changes takes
  a new version (its ETag names what it shows). Consents are left as recorded: the database
  keeps what a consent says immutable, and a tag's case carries no meaning.

The functions below are this revision's own copies: a later change to the service's must not
change what this revision did.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

import unicodedata

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _nfc(value):
    return None if value is None else unicodedata.normalize("NFC", value)


def _line(value):
    return None if value is None else _nfc(value).strip()


def _name_key(name):
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _canonical_case(tag):
    """RFC 5646 2.1.1, as core.schemas.canonical_case is at this revision."""
    if tag is None:
        return None
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


def _once(values, key=str.lower):
    """`values` without a repeat (by `key`), in their order."""
    seen, kept = set(), []
    for value in values:
        if key(value) not in seen:
            seen.add(key(value))
            kept.append(value)
    return kept


_organizations = sa.table(
    "organizations", sa.column("id", sa.Uuid()), sa.column("name", sa.String()),
    sa.column("name_key", sa.String()), sa.column("counties", _JSON),
    sa.column("languages", _JSON), sa.column("version", sa.Integer()))
_families = sa.table(
    "families", sa.column("id", sa.Uuid()), sa.column("child_given_name", sa.String()),
    sa.column("child_family_name", sa.String()), sa.column("child_county", sa.String()),
    sa.column("contact_best_times", sa.String()),
    sa.column("cultural_considerations", sa.Text()),
    sa.column("preferred_language", sa.String()), sa.column("version", sa.Integer()))
_caregivers = sa.table(
    "caregivers", sa.column("id", sa.Uuid()), sa.column("family_id", sa.Uuid()),
    sa.column("given_name", sa.String()), sa.column("family_name", sa.String()))


def _rewrite_organizations(bind):
    for row in bind.execute(sa.select(_organizations)).mappings().all():
        name = _nfc(row["name"])
        counties = _once([_line(c) for c in row["counties"] or []])
        languages = _once([_canonical_case(t) for t in row["languages"] or []])
        wanted = {"name": name, "name_key": _name_key(name), "counties": counties,
                  "languages": languages}
        if any(row[k] != v for k, v in wanted.items()):
            bind.execute(_organizations.update().where(_organizations.c.id == row["id"])
                         .values(**wanted, version=row["version"] + 1))


def _rewrite_families(bind):
    caregivers = {}
    for row in bind.execute(sa.select(_caregivers)).mappings().all():
        wanted = {"given_name": _line(row["given_name"]),
                  "family_name": _line(row["family_name"])}
        if any(row[k] != v for k, v in wanted.items()):
            caregivers.setdefault(row["family_id"], []).append((row["id"], wanted))
    for row in bind.execute(sa.select(_families)).mappings().all():
        wanted = {"child_given_name": _line(row["child_given_name"]),
                  "child_family_name": _line(row["child_family_name"]),
                  "child_county": _line(row["child_county"]),
                  "contact_best_times": _line(row["contact_best_times"]),
                  "cultural_considerations": _nfc(row["cultural_considerations"]),
                  "preferred_language": _canonical_case(row["preferred_language"])}
        changed = {k: v for k, v in wanted.items() if row[k] != v}
        for caregiver_id, names in caregivers.get(row["id"], []):
            bind.execute(_caregivers.update().where(_caregivers.c.id == caregiver_id)
                         .values(**names))
        if changed or row["id"] in caregivers:
            bind.execute(_families.update().where(_families.c.id == row["id"])
                         .values(**changed, version=row["version"] + 1))


def upgrade():
    with op.batch_alter_table("caregivers") as batch_op:
        batch_op.add_column(sa.Column("relationship_description", sa.String(200),
                                      nullable=True))
    op.drop_index("ix_families_custodian_created", table_name="families")
    op.create_index("ix_families_custodian_updated", "families",
                    ["custodian_organization_id", "updated_at", "id"])
    bind = op.get_bind()
    _rewrite_organizations(bind)
    _rewrite_families(bind)


def downgrade():
    # The rewritten text stays rewritten: it is what the older service would have stored.
    op.drop_index("ix_families_custodian_updated", table_name="families")
    op.create_index("ix_families_custodian_created", "families",
                    ["custodian_organization_id", "created_at", "id"])
    with op.batch_alter_table("caregivers") as batch_op:
        batch_op.drop_column("relationship_description")
