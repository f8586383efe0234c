"""The directory's `q` finds names whatever their accents: `organizations.search_key`, the
name case-folded with its combining marks left out ("Clinica" finds "Clínica"), filled here
for every organization as the service now computes it.

The function below is this revision's own copy: a later change to the service's must not
change what this revision did.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_organizations = sa.table("organizations", sa.column("id", sa.Uuid()),
                          sa.column("name", sa.String()), sa.column("search_key", sa.Text()))


def _search_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def upgrade():
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("organizations", sa.Column("search_key", sa.Text(), nullable=False,
                                             server_default=""))
    bind = op.get_bind()
    for row in bind.execute(sa.select(_organizations.c.id, _organizations.c.name)).all():
        bind.execute(_organizations.update().where(_organizations.c.id == row.id)
                     .values(search_key=_search_key(row.name)))


def downgrade():
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.drop_column("search_key")
