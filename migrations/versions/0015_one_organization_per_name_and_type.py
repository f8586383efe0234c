"""The directory lists one organization per name and type: a unique index on
`organizations (name_key, type)`, what `flask org create`'s duplicate check compares.

The check alone was a read before the write: two runs at once (a retried deployment step, two
operators) both found no twin and both committed. The index makes the database refuse the
second; the command then answers as a second run does.

Rows that already collide stop the upgrade before anything changes, naming them: which entry
partners should keep referring to is the operators' decision, not a migration's.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_organizations = sa.table("organizations", sa.column("id", sa.Uuid()),
                          sa.column("name", sa.String()), sa.column("name_key", sa.String()),
                          sa.column("type", sa.String()))


def upgrade():
    twins = _colliding(op.get_bind())
    if twins:
        # RuntimeError: `flask db upgrade` reports it in one line and exits 1 (Flask-Migrate).
        raise RuntimeError(
            "revision 0015 cannot make organization names unique: the directory lists these "
            "organizations more than once under one name and type; rename (or retire) all "
            f"but one of each, then upgrade again: {'; '.join(twins)}")
    op.create_index("uq_organizations_name_key_type", "organizations", ["name_key", "type"],
                    unique=True)


def downgrade():
    op.drop_index("uq_organizations_name_key_type", table_name="organizations")


def _colliding(bind) -> list[str]:
    """Each group of organizations sharing a name key and a type, as one line."""
    keys = (sa.select(_organizations.c.name_key, _organizations.c.type)
            .group_by(_organizations.c.name_key, _organizations.c.type)
            .having(sa.func.count() > 1).subquery())
    rows = bind.execute(
        sa.select(_organizations.c.id, _organizations.c.name, _organizations.c.name_key,
                  _organizations.c.type)
        .join(keys, sa.and_(keys.c.name_key == _organizations.c.name_key,
                            keys.c.type == _organizations.c.type))
        .order_by(_organizations.c.name_key, _organizations.c.type, _organizations.c.id)).all()
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((row.name_key, row.type), []).append(f"{row.name!r} {row.id}")
    return [f"{type_}: {', '.join(named)}" for (_, type_), named in groups.items()]
