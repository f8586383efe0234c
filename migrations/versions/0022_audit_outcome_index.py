"""The auditors' `outcome` filter reads along (outcome, seq), as every other filter reads
along its own index: a page of a rare outcome (`error`, `deny`) scanned the whole log, 170 ms
and more at a million events and growing with it (a review).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_audit_events_outcome_seq", "audit_events", ["outcome", "seq"])


def downgrade():
    op.drop_index("ix_audit_events_outcome_seq", table_name="audit_events")
