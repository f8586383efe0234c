"""PostgreSQL chains audit events at COMMIT, in a deferred trigger, under the head's lock.

A request inserts its events into `audit_pending`; as the transaction commits, a deferred
constraint trigger locks the chain head, gives each event the next seq, hashes it and moves
it into `audit_events`. The head is held only while the commit itself runs, inside the
server: no client round trip and no application thread holds it.

The hash (`audit_event_hash`) is SHA-256 of the text of `json_build_array(<the fields in
HASHED_FIELDS order>)`, byte for byte what audit/chain.py builds with Python's json module
(same separators, same escapes, UTF-8). The verifier recomputes with the same SQL function on
PostgreSQL, and audit/chain.py checks any exported event anywhere.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
COLUMNS = ("id, recorded_at, action, outcome, reason, organization_id, client_id, token_id, "
           "purpose, resource_type, resource_id, family_id, categories, consent_ids, "
           "request_id, request_method, request_path, request_ip")

#: The event hash in SQL: the trigger chains with it and the verifier recomputes with it.
EVENT_HASH = """
CREATE FUNCTION audit_event_hash(
    action text, categories jsonb, client_id text, consent_ids jsonb, family_id uuid,
    id uuid, organization_id uuid, outcome text, prev_hash text, purpose text, reason text,
    recorded_at timestamptz, request_id text, request_ip text, request_method text,
    request_path text, resource_id text, resource_type text, seq bigint, token_id uuid
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- The fields in HASHED_FIELDS order (audit/chain.py): keep the two in step.
    SELECT encode(sha256(convert_to(json_build_array(
        action, categories, client_id, consent_ids, family_id::text, id::text,
        organization_id::text, outcome, prev_hash, purpose, reason,
        to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        request_id, request_ip, request_method, request_path, resource_id, resource_type,
        seq, token_id::text
    )::text, 'UTF8')), 'hex')
$$
"""

SEAL = f"""
CREATE FUNCTION audit_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    event_hash text;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    head_seq := head_seq + 1;
    event_hash := audit_event_hash(
        NEW.action, NEW.categories, NEW.client_id, NEW.consent_ids, NEW.family_id, NEW.id,
        NEW.organization_id, NEW.outcome, head_hash, NEW.purpose, NEW.reason, NEW.recorded_at,
        NEW.request_id, NEW.request_ip, NEW.request_method, NEW.request_path,
        NEW.resource_id, NEW.resource_type, head_seq, NEW.token_id);
    INSERT INTO audit_events ({COLUMNS}, seq, prev_hash, hash)
    VALUES (NEW.id, NEW.recorded_at, NEW.action, NEW.outcome, NEW.reason, NEW.organization_id,
            NEW.client_id, NEW.token_id, NEW.purpose, NEW.resource_type, NEW.resource_id,
            NEW.family_id, NEW.categories, NEW.consent_ids, NEW.request_id,
            NEW.request_method, NEW.request_path, NEW.request_ip, head_seq, head_hash,
            event_hash);
    UPDATE audit_chain_head SET seq = head_seq, hash = event_hash WHERE id = 1;
    DELETE FROM audit_pending WHERE id = NEW.id;
    RETURN NULL;
END $$
"""


def upgrade():
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("token_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("family_id", sa.Uuid(), nullable=True),
        sa.Column("categories", JSONDocument, nullable=False),
        sa.Column("consent_ids", JSONDocument, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("request_method", sa.String(length=8), nullable=True),
        sa.Column("request_path", sa.String(length=512), nullable=True),
        sa.Column("request_ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Its rows never outlive their transaction (the trigger moves them at COMMIT), so
        # writing them to the WAL buys nothing; a crash loses no chained event.
        op.execute("ALTER TABLE audit_pending SET UNLOGGED")
        op.execute(EVENT_HASH)
        op.execute(SEAL)
        op.execute("CREATE CONSTRAINT TRIGGER audit_pending_seal AFTER INSERT ON audit_pending "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_seal()")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_pending_seal ON audit_pending")
        op.execute("DROP FUNCTION IF EXISTS audit_seal()")
        op.execute("DROP FUNCTION IF EXISTS audit_event_hash")
    op.drop_table("audit_pending")
