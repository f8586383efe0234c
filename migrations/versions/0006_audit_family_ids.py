"""One audit event can name several families: `family_ids`, hashed, and indexed by family.

`family_ids` (a JSON array of lowercase UUID strings, sorted, empty by default) joins
`audit_events` and `audit_pending`. The hash appends it to the canonical array only when it is
not empty, so every event chained before this revision keeps its bytes and its hash:
`audit_event_hash` takes it as a last argument and `audit_seal` copies and hashes it.

`audit_listed_families (family_id, seq)` lists each family an event's `family_ids` names, for
the family filters (a keyset range scan ending in seq, as every auditor's filter is; see
audit/models.py AuditListedFamily). A trigger on `audit_events` fills it as events are
chained, whoever inserts them; it is append-only like the events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
EVENT_TABLES = ("audit_events", "audit_pending")
LISTED = "audit_listed_families"
#: audit_event_hash's arguments before this revision, to drop that function by its signature.
OLD_HASH_ARGUMENTS = ("text, jsonb, text, jsonb, uuid, uuid, uuid, text, text, text, text, "
                      "timestamptz, text, text, text, text, text, text, bigint, uuid")
COLUMNS = ("id, recorded_at, action, outcome, reason, organization_id, client_id, token_id, "
           "purpose, resource_type, resource_id, family_id, categories, consent_ids, "
           "request_id, request_method, request_path, request_ip, family_ids")

#: The twenty fields of the canonical array, in HASHED_FIELDS order (audit/chain.py).
_CANONICAL = """
        action, categories, client_id, consent_ids, family_id::text, id::text,
        organization_id::text, outcome, prev_hash, purpose, reason,
        to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        request_id, request_ip, request_method, request_path, resource_id, resource_type,
        seq, token_id::text"""

#: The event hash in SQL: audit/chain.py event_hash, byte for byte. The trigger chains with
#: it and the verifier recomputes with it.
EVENT_HASH = f"""
CREATE FUNCTION audit_event_hash(
    action text, categories jsonb, client_id text, consent_ids jsonb, family_id uuid,
    id uuid, organization_id uuid, outcome text, prev_hash text, purpose text, reason text,
    recorded_at timestamptz, request_id text, request_ip text, request_method text,
    request_path text, resource_id text, resource_type text, seq bigint, token_id uuid,
    family_ids jsonb
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- The fields in HASHED_FIELDS order (audit/chain.py): keep the two in step. family_ids
    -- is appended only when not empty, so events chained before it keep their hash; a JSON
    -- null counts as empty, as Python reads it as None.
    SELECT encode(sha256(convert_to((CASE
        WHEN family_ids IS NULL OR family_ids IN ('[]'::jsonb, 'null'::jsonb)
        THEN json_build_array({_CANONICAL})
        ELSE json_build_array({_CANONICAL}, family_ids)
    END)::text, 'UTF8')), 'hex')
$$
"""

SEAL = f"""
CREATE OR REPLACE FUNCTION audit_seal() RETURNS trigger LANGUAGE plpgsql AS $$
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
        NEW.resource_id, NEW.resource_type, head_seq, NEW.token_id, NEW.family_ids);
    INSERT INTO audit_events ({COLUMNS}, seq, prev_hash, hash)
    VALUES (NEW.id, NEW.recorded_at, NEW.action, NEW.outcome, NEW.reason, NEW.organization_id,
            NEW.client_id, NEW.token_id, NEW.purpose, NEW.resource_type, NEW.resource_id,
            NEW.family_id, NEW.categories, NEW.consent_ids, NEW.request_id,
            NEW.request_method, NEW.request_path, NEW.request_ip, NEW.family_ids, head_seq,
            head_hash, event_hash);
    UPDATE audit_chain_head SET seq = head_seq, hash = event_hash WHERE id = 1;
    DELETE FROM audit_pending WHERE id = NEW.id;
    RETURN NULL;
END $$
"""

LIST_FAMILIES = f"""
CREATE FUNCTION audit_list_families() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {LISTED} (family_id, seq)
    SELECT DISTINCT listed::uuid, NEW.seq FROM jsonb_array_elements_text(NEW.family_ids) listed;
    RETURN NULL;
END $$
"""


def upgrade():
    for table in EVENT_TABLES:
        # A constant default: PostgreSQL adds the column without rewriting the table (and so
        # without touching the append-only triggers), however many events it holds.
        op.add_column(table, sa.Column("family_ids", JSONDocument, nullable=False,
                                       server_default="[]"))
    op.create_table(
        LISTED,
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("family_id", "seq", name=op.f(f"pk_{LISTED}")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION audit_event_hash({OLD_HASH_ARGUMENTS})")
        op.execute(EVENT_HASH)
        op.execute(SEAL)
        op.execute(LIST_FAMILIES)
        # The WHEN test runs in the executor: an event without family_ids (most) calls nothing.
        op.execute("CREATE TRIGGER audit_events_list_families AFTER INSERT ON audit_events "
                   "FOR EACH ROW WHEN (NEW.family_ids <> '[]'::jsonb) "
                   "EXECUTE FUNCTION audit_list_families()")
        op.execute(f"CREATE TRIGGER {LISTED}_append_only BEFORE UPDATE OR DELETE ON {LISTED} "
                   "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()")
        op.execute(f"CREATE TRIGGER {LISTED}_no_truncate BEFORE TRUNCATE ON {LISTED} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()")
    else:
        # SQLite keeps a UUID column as 32 hex digits (SQLAlchemy's Uuid), not the dashed text.
        op.execute(f"""
            CREATE TRIGGER audit_events_list_families AFTER INSERT ON audit_events
            WHEN NEW.family_ids <> '[]'
            BEGIN
                INSERT INTO {LISTED} (family_id, seq)
                SELECT DISTINCT replace(lower(listed.value), '-', ''), NEW.seq
                FROM json_each(NEW.family_ids) AS listed;
            END""")
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {LISTED}_no_{verb.lower()} BEFORE {verb} ON {LISTED} "
                       f"BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END")


def _revision_0004():
    """Migration 0004's module, whose functions the downgrade puts back."""
    path = Path(__file__).with_name("0004_audit_chained_at_commit.py")
    spec = importlib.util.spec_from_file_location("audit_revision_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade():
    """Back to one family per event; the hash of an event that listed families is lost."""
    if op.get_bind().dialect.name == "postgresql":
        before = _revision_0004()
        op.execute("DROP TRIGGER IF EXISTS audit_events_list_families ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_list_families()")
        op.execute(f"DROP TRIGGER IF EXISTS {LISTED}_append_only ON {LISTED}")
        op.execute(f"DROP TRIGGER IF EXISTS {LISTED}_no_truncate ON {LISTED}")
        op.execute(before.SEAL.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
        op.execute("DROP FUNCTION audit_event_hash")
        op.execute(before.EVENT_HASH)
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_list_families")
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {LISTED}_no_{verb}")
    op.drop_table(LISTED)
    for table in EVENT_TABLES:
        op.drop_column(table, "family_ids")
