"""Referrals, their timeline and their notes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _one_of(table, column, values):
    return sa.CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})",
                              name=op.f(f"ck_{table}_{column}"))


STATUSES = ("draft", "requested", "received", "accepted", "rejected", "in_progress", "on_hold",
            "completed", "cancelled")
STATUS_REASONS = ("at_capacity", "not_eligible", "family_declined", "unable_to_contact",
                  "duplicate", "other", "sent_in_error", "family_moved", "no_longer_needed",
                  "family_circumstances", "awaiting_consent", "waitlist", "consent_ended")
NOTE_CATEGORIES = ("coordination_notes", "service_status", "referral_reason", "screening",
                   "health", "child_welfare")


def upgrade():
    op.create_table(
        "referrals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("from_organization_id", sa.Uuid(), nullable=False),
        sa.Column("to_organization_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("business_status", sa.String(length=24), nullable=True),
        sa.Column("status_reason", sa.String(length=24), nullable=True),
        sa.Column("status_set_by_organization_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("reasons", JSONDocument, nullable=False),
        sa.Column("reason_detail", sa.Text(), nullable=True),
        sa.Column("urgency", sa.String(length=8), nullable=False),
        sa.Column("shared_categories", JSONDocument, nullable=False),
        sa.Column("consent_ids", JSONDocument, nullable=False),
        sa.Column("part_c_identified_on", sa.Date(), nullable=True),
        sa.Column("referral_due_by", sa.Date(), nullable=True),
        sa.Column("timeline_due_by", sa.Date(), nullable=True),
        sa.Column("timeline_paused_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _one_of("referrals", "status", STATUSES),
        _one_of("referrals", "urgency", ("routine", "urgent")),
        _one_of("referrals", "business_status",
                ("contact_attempted", "scheduled", "no_show", "engaged")),
        _one_of("referrals", "status_reason", STATUS_REASONS),
        _one_of("referrals", "outcome", ("goals_met", "family_discontinued", "transferred",
                                         "moved", "other")),
        sa.CheckConstraint("from_organization_id <> to_organization_id",
                           name=op.f("ck_referrals_two_sides")),
        sa.ForeignKeyConstraint(["family_id"], ["families.id"],
                                name=op.f("fk_referrals_family_id_families")),
        sa.ForeignKeyConstraint(["from_organization_id"], ["organizations.id"],
                                name=op.f("fk_referrals_from_organization_id_organizations")),
        sa.ForeignKeyConstraint(["to_organization_id"], ["organizations.id"],
                                name=op.f("fk_referrals_to_organization_id_organizations")),
        sa.ForeignKeyConstraint(
            ["status_set_by_organization_id"], ["organizations.id"],
            name=op.f("fk_referrals_status_set_by_organization_id_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    op.create_index("ix_referrals_from_updated", "referrals",
                    ["from_organization_id", "updated_at", "id"])
    op.create_index("ix_referrals_to_updated", "referrals",
                    ["to_organization_id", "updated_at", "id"])
    op.create_index("ix_referrals_family", "referrals", ["family_id"])

    op.create_table(
        "referral_notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("author_organization_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _one_of("referral_notes", "category", NOTE_CATEGORIES),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"],
                                name=op.f("fk_referral_notes_referral_id_referrals")),
        sa.ForeignKeyConstraint(
            ["author_organization_id"], ["organizations.id"],
            name=op.f("fk_referral_notes_author_organization_id_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_notes")),
    )
    op.create_index("ix_referral_notes_referral", "referral_notes",
                    ["referral_id", "created_at", "id"])

    op.create_table(
        "referral_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("referral_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("business_status", sa.String(length=24), nullable=True),
        sa.Column("reason", sa.String(length=24), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("note_id", sa.Uuid(), nullable=True),
        _one_of("referral_events", "to_status", STATUSES),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"],
                                name=op.f("fk_referral_events_referral_id_referrals")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_referral_events_organization_id_organizations")),
        sa.ForeignKeyConstraint(["note_id"], ["referral_notes.id"],
                                name=op.f("fk_referral_events_note_id_referral_notes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_events")),
        sa.UniqueConstraint("referral_id", "referral_version",
                            name=op.f("uq_referral_events_referral_id_referral_version")),
    )


def downgrade():
    op.drop_table("referral_events")
    op.drop_table("referral_notes")
    op.drop_table("referrals")
