"""Idempotency keys name the family their request concerned.

A replayed answer is a look at what the first request created; its audit event names the
family that request concerned, so the family's trail (`?family_id=`) finds it. Keys stored
before this revision name none, and live at most a day.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))


def downgrade():
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.drop_column("family_id")
