"""PostgreSQL chains audit events in batches, after their transactions commit.

Until now a deferred trigger chained each request's events as its transaction committed,
under the chain head's row lock; PostgreSQL holds a row lock until the commit's WAL flush is
on disk, so every audited commit in the network waited for the one before it to reach the
disk: one flush each, never grouped. On this machine that capped audited requests at about
2,000 a second, and cost 0.5 ms of CPU per request in lock hand-offs and lone flushes.

Now a request's transaction only inserts its events into `audit_pending` (logged from now on:
a committed event waits there until sealed, and a crash must not lose it). `audit_seal_pending`
takes a batch of committed pending events in (recorded_at, id) order, gives each the next seq, hashes it, moves it into
`audit_events` and moves the head once per batch, under the head's lock: the sealer is the only
writer that takes it. Auditors' reads seal first (waiting for a sealer at work), so they see
every event committed before them; every worker seals in the background besides (audit/sealer.py).

Pending rows are append-only too: none can be changed, and one can be deleted only once an
event with its id is in the chain up to its head (the sealer deletes what it moved), so the
application cannot lose a committed event before it is sealed. Like every trigger here, this
guards against the application and its role's mistakes, not against the database's owner,
who can drop triggers: the chain and its signed checkpoints are what show tampering. They carry the chain's checks on action and outcome, so a
row the chain would refuse is refused at the request's commit instead of stopping the sealer;
an index on (recorded_at, id) keeps each batch an index scan however long a backlog grows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: As migration 0002 and audit/models.py have them.
ACTIONS = ("create", "read", "update", "search", "transition", "revoke", "decide", "export")
OUTCOMES = ("permit", "deny", "error")
COLUMNS = ("id, recorded_at, action, outcome, reason, organization_id, client_id, token_id, "
           "purpose, resource_type, resource_id, family_id, categories, consent_ids, "
           "request_id, request_method, request_path, request_ip, family_ids")

SEAL_PENDING = f"""
CREATE FUNCTION audit_seal_pending(batch integer, wait boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    sealed uuid[] := '{{}}';
    p audit_pending%ROWTYPE;
BEGIN
    -- Nothing committed waits: no lock taken, so an idle sealer's turn writes nothing. (A
    -- row a sealer at work is moving is still visible here, so a reader then waits for it.)
    PERFORM 1 FROM audit_pending ORDER BY recorded_at, id LIMIT 1;  -- the index, not a scan
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- One sealer at a time: the head's lock orders the chain. A background sealer that finds
    -- it taken leaves the work to the one holding it (wait false).
    IF wait THEN
        SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_head WHERE id = 1
            FOR UPDATE;
    ELSE
        SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_head WHERE id = 1
            FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN 0;
        END IF;
    END IF;
    -- Read after the lock is held: what an earlier sealer moved is gone, what committed
    -- since is here; what commits while this runs waits for the next batch.
    FOR p IN SELECT * FROM audit_pending ORDER BY recorded_at, id LIMIT batch LOOP
        head_seq := head_seq + 1;
        INSERT INTO audit_events ({COLUMNS}, seq, prev_hash, hash)
        VALUES (p.id, p.recorded_at, p.action, p.outcome, p.reason, p.organization_id,
                p.client_id, p.token_id, p.purpose, p.resource_type, p.resource_id,
                p.family_id, p.categories, p.consent_ids, p.request_id, p.request_method,
                p.request_path, p.request_ip, p.family_ids, head_seq, head_hash,
                audit_event_hash(
                    p.action, p.categories, p.client_id, p.consent_ids, p.family_id, p.id,
                    p.organization_id, p.outcome, head_hash, p.purpose, p.reason,
                    p.recorded_at, p.request_id, p.request_ip, p.request_method,
                    p.request_path, p.resource_id, p.resource_type, head_seq, p.token_id,
                    p.family_ids))
        RETURNING hash INTO head_hash;
        sealed := sealed || p.id;
    END LOOP;
    IF cardinality(sealed) > 0 THEN
        -- The head first: the guard lets a pending row go only once the chain, up to its
        -- head, holds its event.
        UPDATE audit_chain_head SET seq = head_seq, hash = head_hash WHERE id = 1;
        DELETE FROM audit_pending WHERE id = ANY (sealed);
    END IF;
    RETURN cardinality(sealed);
END $$
"""

#: A pending event is changed by no one, and leaves only once it is in the chain: an event
#: with its id at a seq from 1 to the head's (an event written beside the chain, at seq 0 or
#: past the head, does not count; inside that range every seq is taken by the chain).
PENDING_GUARD = """
CREATE FUNCTION audit_pending_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
            SELECT 1 FROM audit_events e, audit_chain_head h
            WHERE e.id = OLD.id AND h.id = 1 AND e.seq BETWEEN 1 AND h.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only (%)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def upgrade():
    # Both databases, so models and migrations agree; only PostgreSQL writes pending rows.
    with op.batch_alter_table("audit_pending") as batch:
        batch.create_check_constraint(
            op.f("ck_audit_pending_action"), f"action IN ({', '.join(map(repr, ACTIONS))})")
        batch.create_check_constraint(
            op.f("ck_audit_pending_outcome"), f"outcome IN ({', '.join(map(repr, OUTCOMES))})")
    op.create_index("ix_audit_pending_recorded_at_id", "audit_pending", ["recorded_at", "id"])
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite chains in Python at commit (audit/recorder.py), as before
    op.execute("DROP TRIGGER audit_pending_seal ON audit_pending")
    op.execute("DROP FUNCTION audit_seal()")
    # Empty here: the trigger left no row behind its transaction.
    op.execute("ALTER TABLE audit_pending SET LOGGED")
    op.execute(SEAL_PENDING)
    op.execute(PENDING_GUARD)
    op.execute("CREATE TRIGGER audit_pending_append_only BEFORE UPDATE OR DELETE ON "
               "audit_pending FOR EACH ROW EXECUTE FUNCTION audit_pending_guard()")
    op.execute("CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()")


def _revision_0006():
    """Migration 0006's module, whose trigger function the downgrade puts back."""
    path = Path(__file__).with_name("0006_audit_family_ids.py")
    spec = importlib.util.spec_from_file_location("audit_revision_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _back_to_sealing_at_commit()
    op.drop_index("ix_audit_pending_recorded_at_id", table_name="audit_pending")
    with op.batch_alter_table("audit_pending") as batch:
        batch.drop_constraint(op.f("ck_audit_pending_outcome"), type_="check")
        batch.drop_constraint(op.f("ck_audit_pending_action"), type_="check")


def _back_to_sealing_at_commit():
    # No request may commit an event between the last seal and the trigger's return: the
    # trigger put back chains only rows inserted after it.
    op.execute("LOCK TABLE audit_pending IN ACCESS EXCLUSIVE MODE")
    op.execute("SELECT audit_seal_pending(2147483647, true)")
    op.execute("DROP TRIGGER audit_pending_no_truncate ON audit_pending")
    op.execute("DROP TRIGGER audit_pending_append_only ON audit_pending")
    op.execute("DROP FUNCTION audit_pending_guard()")
    op.execute("DROP FUNCTION audit_seal_pending(integer, boolean)")
    op.execute("ALTER TABLE audit_pending SET UNLOGGED")
    op.execute(_revision_0006().SEAL.replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION"))
    op.execute("CREATE CONSTRAINT TRIGGER audit_pending_seal AFTER INSERT ON audit_pending "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_seal()")
