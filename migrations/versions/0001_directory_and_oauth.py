"""The directory of organizations, and OAuth clients and tokens (hashed).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TYPES = ("imh_provider", "pediatric_primary_care", "child_welfare", "early_intervention",
         "home_visiting", "early_head_start", "hospital", "community_other")


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("counties", JSONDocument, nullable=False),
        sa.Column("languages", JSONDocument, nullable=False),
        sa.Column("accepting_referrals", sa.Boolean(), nullable=False),
        sa.Column("capacity_status", sa.String(length=20), nullable=True),
        sa.Column("capacity_waitlist", sa.String(length=20), nullable=True),
        sa.Column("capacity_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("capacity_status", ("available", "waitlist", "full")),
                           name=op.f("ck_organizations_capacity_status")),
        sa.CheckConstraint(
            _in("capacity_waitlist", ("lt_1_month", "1_3_months", "gt_3_months", "unknown")),
            name=op.f("ck_organizations_capacity_waitlist")),
        sa.CheckConstraint(_in("type", TYPES), name=op.f("ck_organizations_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_index("ix_organizations_name_key_id", "organizations", ["name_key", "id"])

    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_oauth_clients_organization_id_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
    )
    op.create_index(op.f("ix_oauth_clients_organization_id"), "oauth_clients",
                    ["organization_id"])

    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"],
                                name=op.f("fk_oauth_tokens_client_id_oauth_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oauth_tokens_token_hash")),
    )


def downgrade():
    op.drop_table("oauth_tokens")
    op.drop_table("oauth_clients")
    op.drop_table("organizations")
