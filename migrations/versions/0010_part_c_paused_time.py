"""Part C: the time a referral's 45-day clock has been paused, in all.

Each ended pause used to push `timeline_due_by` back by its own days, rounded up: five
documented holds of five minutes on one day moved the deadline five days. The referral now
keeps the paused seconds together, and the deadline moves by them in whole days, rounded up
once. Referrals paused before this revision keep the days their pauses added; their total
starts at 0.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("referrals") as batch_op:
        batch_op.add_column(sa.Column("timeline_paused_seconds", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade():
    with op.batch_alter_table("referrals") as batch_op:
        batch_op.drop_column("timeline_paused_seconds")
