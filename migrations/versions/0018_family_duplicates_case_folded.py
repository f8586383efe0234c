"""The duplicate check compares a child's names as core.text.name_key keys them, in Python
(`families.child_name_key`): the database's lower() left "Straße" and "STRASSE", a final
sigma and a capital one, a full-width letter or a zero-width space, two children. Filled here for every family as the service now computes it; the check's index
takes the key.

The functions below are this revision's own copy: a later change to the service's must not
change what this revision did.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_families = sa.table("families", sa.column("id", sa.Uuid()),
                     sa.column("child_given_name", sa.String()),
                     sa.column("child_family_name", sa.String()),
                     sa.column("child_name_key", sa.Text()))


def _name_key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cf").split())


def upgrade():
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("families", sa.Column("child_name_key", sa.Text(), nullable=False,
                                        server_default=""))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_families.c.id, _families.c.child_given_name,
                                  _families.c.child_family_name)).all()
    for row in rows:
        key = f"{_name_key(row.child_given_name)}\n{_name_key(row.child_family_name)}"
        bind.execute(_families.update().where(_families.c.id == row.id)
                     .values(child_name_key=key))
    op.drop_index("ix_families_custodian_child", table_name="families")
    op.create_index("ix_families_custodian_child", "families",
                    ["custodian_organization_id", "child_birth_date", "child_name_key"])


def downgrade():
    op.drop_index("ix_families_custodian_child", table_name="families")
    op.create_index("ix_families_custodian_child", "families",
                    ["custodian_organization_id", "child_birth_date"])
    with op.batch_alter_table("families") as batch_op:
        batch_op.drop_column("child_name_key")
