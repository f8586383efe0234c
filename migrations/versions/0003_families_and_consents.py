"""Families, caregivers, consents and the organizations each consent names.

Consents are immutable once recorded: the database refuses every change but the one
revocation, and refuses deletes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
#: Everything a consent says; only the revocation columns are ever written after the insert.
RECORDED = (
    "id",
    "family_id",
    "grantor_caregiver_id",
    "grantor_legal_authority",
    "purposes",
    "categories",
    "effective_at",
    "expires_at",
    "method",
    "signed_at",
    "explained_in_language",
    "interpreter_used",
    "revocation_rights_explained",
    "recorded_by_organization_id",
    "recorded_at",
)


def upgrade():
    op.create_table(
        "families",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("custodian_organization_id", sa.Uuid(), nullable=False),
        sa.Column("child_given_name", sa.String(length=100), nullable=False),
        sa.Column("child_family_name", sa.String(length=100), nullable=False),
        sa.Column("child_birth_date", sa.Date(), nullable=False),
        sa.Column("child_county", sa.String(length=100), nullable=True),
        sa.Column("preferred_language", sa.String(length=35), nullable=True),
        sa.Column("interpreter_needed", sa.Boolean(), nullable=False),
        sa.Column("cultural_considerations", sa.Text(), nullable=True),
        sa.Column("do_not_contact", sa.Boolean(), nullable=False),
        sa.Column("contact_methods", JSONDocument, nullable=False),
        sa.Column("contact_best_times", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["custodian_organization_id"],
            ["organizations.id"],
            name=op.f("fk_families_custodian_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_families")),
    )
    with op.batch_alter_table("families", schema=None) as batch_op:
        batch_op.create_index(
            "ix_families_custodian_child",
            ["custodian_organization_id", "child_birth_date"],
            unique=False,
        )
        batch_op.create_index(
            "ix_families_custodian_created",
            ["custodian_organization_id", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "caregivers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("relationship", sa.String(length=32), nullable=False),
        sa.Column("has_legal_authority", sa.Boolean(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.CheckConstraint(
            "relationship IN ('mother', 'father', 'grandparent', 'foster_parent', 'legal_guardian', 'kinship_caregiver', 'other')",
            name=op.f("ck_caregivers_relationship"),
        ),
        sa.ForeignKeyConstraint(
            ["family_id"], ["families.id"], name=op.f("fk_caregivers_family_id_families")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caregivers")),
    )
    with op.batch_alter_table("caregivers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caregivers_family_id"), ["family_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("grantor_caregiver_id", sa.Uuid(), nullable=False),
        sa.Column("grantor_legal_authority", sa.String(length=20), nullable=False),
        sa.Column("purposes", JSONDocument, nullable=False),
        sa.Column("categories", JSONDocument, nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=24), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("explained_in_language", sa.String(length=35), nullable=False),
        sa.Column("interpreter_used", sa.Boolean(), nullable=False),
        sa.Column("revocation_rights_explained", sa.Boolean(), nullable=False),
        sa.Column("recorded_by_organization_id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=1000), nullable=True),
        sa.Column("revocation_requested_by", sa.String(length=16), nullable=True),
        sa.Column("revocation_caregiver_id", sa.Uuid(), nullable=True),
        sa.Column("revoked_by_organization_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "grantor_legal_authority IN ('parent', 'legal_guardian', 'court_appointed')",
            name=op.f("ck_consents_legal_authority"),
        ),
        sa.CheckConstraint(
            "method IN ('written', 'electronic_signature', 'verbal_witnessed')",
            name=op.f("ck_consents_method"),
        ),
        sa.CheckConstraint(
            "expires_at > effective_at", name=op.f("ck_consents_expires_after_effective")
        ),
        sa.CheckConstraint(
            "revocation_rights_explained", name=op.f("ck_consents_revocation_rights_explained")
        ),
        sa.ForeignKeyConstraint(
            ["family_id"], ["families.id"], name=op.f("fk_consents_family_id_families")
        ),
        sa.ForeignKeyConstraint(
            ["grantor_caregiver_id"],
            ["caregivers.id"],
            name=op.f("fk_consents_grantor_caregiver_id_caregivers"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_organization_id"],
            ["organizations.id"],
            name=op.f("fk_consents_recorded_by_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["revocation_caregiver_id"],
            ["caregivers.id"],
            name=op.f("fk_consents_revocation_caregiver_id_caregivers"),
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_organization_id"],
            ["organizations.id"],
            name=op.f("fk_consents_revoked_by_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consents_family_expires", ["family_id", "expires_at"], unique=False
        )

    op.create_table(
        "consent_parties",
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_consent_parties_consent_id_consents")
        ),
        sa.ForeignKeyConstraint(
            ["family_id"], ["families.id"], name=op.f("fk_consent_parties_family_id_families")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_consent_parties_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("consent_id", "organization_id", name=op.f("pk_consent_parties")),
    )
    with op.batch_alter_table("consent_parties", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_parties_organization_family", ["organization_id", "family_id"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        recorded = ", ".join(f"NEW.{c}" for c in RECORDED)
        previous = ", ".join(f"OLD.{c}" for c in RECORDED)
        op.execute(f"""
            CREATE FUNCTION consent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION 'consents are never deleted'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                IF OLD.revoked_at IS NOT NULL THEN
                    RAISE EXCEPTION 'a revoked consent never changes'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                IF ROW({recorded}) IS DISTINCT FROM ROW({previous}) THEN
                    RAISE EXCEPTION 'consents are immutable once recorded'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN NEW;
            END $$
        """)
        op.execute(
            "CREATE TRIGGER consents_immutable BEFORE UPDATE OR DELETE ON consents "
            "FOR EACH ROW EXECUTE FUNCTION consent_refuse_change()"
        )
        op.execute("""
            CREATE FUNCTION consent_party_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'consents are immutable once recorded'
                    USING ERRCODE = 'insufficient_privilege';
            END $$
        """)
        op.execute(
            "CREATE TRIGGER consent_parties_immutable BEFORE UPDATE OR DELETE ON "
            "consent_parties FOR EACH ROW EXECUTE FUNCTION consent_party_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER consents_no_delete BEFORE DELETE ON consents "
            "BEGIN SELECT RAISE(ABORT, 'consents are never deleted'); END"
        )
        op.execute(
            f"CREATE TRIGGER consents_immutable BEFORE UPDATE OF {', '.join(RECORDED)} "
            "ON consents BEGIN SELECT RAISE(ABORT, 'consents are immutable once recorded'); "
            "END"
        )
        op.execute(
            "CREATE TRIGGER consents_revoked_never_change BEFORE UPDATE ON consents "
            "WHEN OLD.revoked_at IS NOT NULL "
            "BEGIN SELECT RAISE(ABORT, 'a revoked consent never changes'); END"
        )
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER consent_parties_no_{verb.lower()} BEFORE {verb} ON "
                "consent_parties BEGIN SELECT RAISE(ABORT, "
                "'consents are immutable once recorded'); END"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_parties_immutable ON consent_parties")
        op.execute("DROP TRIGGER IF EXISTS consents_immutable ON consents")
        op.execute("DROP FUNCTION IF EXISTS consent_party_refuse_change()")
        op.execute("DROP FUNCTION IF EXISTS consent_refuse_change()")
    op.drop_table("consent_parties")
    op.drop_table("consents")
    op.drop_table("caregivers")
    op.drop_table("families")
