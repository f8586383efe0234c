"""The directory's name key (`organizations.name_key`: its order, and one organization per
name and type) takes look-alike names for one: keyed in Unicode NFKC, without the characters
that show nothing, spaces of any kind one space between words. "Riverbend\\u00a0IMH",
"Ｒiverbend IMH", "Riverbend IMH\\u200b" and "Riverbend  IMH" were four entries partners
could not tell apart. Every organization's key is computed again here as the service now
computes it.

Rows that would then collide stop the upgrade before anything changes, naming them, as
revision 0015 did: which entry partners should keep referring to is the operators' decision.

The function below is this revision's own copy: a later change to the service's must not
change what this revision did.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_organizations = sa.table("organizations", sa.column("id", sa.Uuid()),
                          sa.column("name", sa.String()), sa.column("name_key", sa.String()),
                          sa.column("type", sa.String()))


def _name_key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cf").split())


def _nfc_key(name: str) -> str:
    """The key before this revision."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def upgrade():
    _rekey(op.get_bind(), _name_key, "revision 0019 cannot key look-alike organization names "
                                     "as one: the directory lists these organizations under "
                                     "names that differ only in what shows nothing or alike")


def downgrade():
    _rekey(op.get_bind(), _nfc_key, "revision 0019 cannot be undone")


def _rekey(bind, key, refusal: str) -> None:
    rows = bind.execute(sa.select(_organizations.c.id, _organizations.c.name,
                                  _organizations.c.type).order_by(_organizations.c.id)).all()
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((key(row.name), row.type), []).append(row)
    twins = [f"{type_}: {', '.join(f'{r.name!r} {r.id}' for r in named)}"
             for (_, type_), named in groups.items() if len(named) > 1]
    if twins:
        # RuntimeError: `flask db upgrade` reports it in one line and exits 1 (Flask-Migrate).
        raise RuntimeError(f"{refusal}; rename (or retire) all but one of each, then run "
                           f"again: {'; '.join(twins)}")
    # The unique index would refuse a key taken over from a row not updated yet.
    op.drop_index("uq_organizations_name_key_type", table_name="organizations")
    for (new_key, _), (row,) in groups.items():
        bind.execute(_organizations.update().where(_organizations.c.id == row.id)
                     .values(name_key=new_key))
    op.create_index("uq_organizations_name_key_type", "organizations", ["name_key", "type"],
                    unique=True)
