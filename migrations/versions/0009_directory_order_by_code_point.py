"""The directory's order no longer depends on the database's collation.

`organizations.name_key` (the name case-folded) orders the directory and bounds its keyset
pages. On PostgreSQL both used the database's default collation: on a database created with
an ICU or glibc `en` locale, as many installations are, `_Underscore Care` came before
`100 Acres Kids` and `Éclair` among the E names, another order than on a C database or on
SQLite. The column now has the "C" collation, which compares code points as SQLite's BINARY
and Python's `sorted` do; changing its type rebuilds `ix_organizations_name_key_id` with it.
SQLite has nothing to change.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("organizations", "name_key", type_=sa.String(200, collation="C"),
                        existing_type=sa.String(200), existing_nullable=False)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        # Without COLLATE, the column takes the database's default collation again.
        op.alter_column("organizations", "name_key", type_=sa.String(200),
                        existing_type=sa.String(200, collation="C"), existing_nullable=False)
