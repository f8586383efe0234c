"""The trail's `seq` starts at 1, and the chain head keeps how far `recorded_at` strays from
chain order.

- `seq` from 1. Events are chained from seq 1; a row written below it (an INSERT needs no
  trigger bypass) would be shown by the family filter and the accounting of disclosures while
  lying outside the chain verify walks. PostgreSQL checks `seq >= 1` on the events and the
  listed families; SQLite, whose tables cannot take a CHECK without being rebuilt (and these
  hold the trail), refuses such an INSERT with a trigger. `flask audit verify` reports a row
  below 1 either way, for a database whose guard was removed.
- Time order. An event is dated by the clock of the host that recorded it and chained in
  commit order, so `recorded_at` is not monotonic in `seq`: by the length of a transaction,
  and by any host's clock error. The time filters narrow their scan by `seq` and must know by
  how much at most: the head keeps the newest `recorded_at` chained so far and
  `time_disorder_us`, the most an event's `recorded_at` has fallen before that of an event
  chained earlier. Both chaining paths keep them (the sealer here, audit/recorder.py on
  SQLite); they are backfilled from the log.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import importlib.util
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("audit_events", "audit_listed_families")
#: As migration 0008 has them.
COLUMNS = ("id, recorded_at, action, outcome, reason, organization_id, client_id, token_id, "
           "purpose, resource_type, resource_id, family_id, categories, consent_ids, "
           "request_id, request_method, request_path, request_ip, family_ids")

#: 0008's sealer, keeping the head's time order as it chains.
SEAL_PENDING = f"""
CREATE OR REPLACE FUNCTION audit_seal_pending(batch integer, wait boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    newest timestamptz;
    disorder bigint;
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
        SELECT seq, hash, newest_recorded_at, time_disorder_us
            INTO head_seq, head_hash, newest, disorder
            FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    ELSE
        SELECT seq, hash, newest_recorded_at, time_disorder_us
            INTO head_seq, head_hash, newest, disorder
            FROM audit_chain_head WHERE id = 1 FOR UPDATE SKIP LOCKED;
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
        IF p.recorded_at < newest THEN  -- dated before an event already chained
            disorder := greatest(disorder, _audit_us(newest - p.recorded_at));
        END IF;
        newest := greatest(newest, p.recorded_at);
        sealed := sealed || p.id;
    END LOOP;
    IF cardinality(sealed) > 0 THEN
        -- The head first: the guard lets a pending row go only once the chain, up to its
        -- head, holds its event.
        UPDATE audit_chain_head SET seq = head_seq, hash = head_hash,
            newest_recorded_at = newest, time_disorder_us = disorder WHERE id = 1;
        DELETE FROM audit_pending WHERE id = ANY (sealed);
    END IF;
    RETURN cardinality(sealed);
END $$
"""
MICROSECONDS = """
CREATE FUNCTION _audit_us(span interval) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT (extract(epoch FROM span) * 1000000)::bigint
$$
"""
BACKFILL = """
UPDATE audit_chain_head SET
    newest_recorded_at = (SELECT max(recorded_at) FROM audit_events),
    time_disorder_us = coalesce((
        SELECT max(_audit_us(before - recorded_at)) FROM (
            SELECT recorded_at, max(recorded_at) OVER (
                ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
            FROM audit_events) AS chained
        WHERE before > recorded_at), 0)
WHERE id = 1
"""


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgresql:
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_seq_from_1 "
                       "CHECK (seq >= 1)")
        else:
            op.execute(f"""
                CREATE TRIGGER {table}_seq_from_1 BEFORE INSERT ON {table}
                WHEN NEW.seq < 1
                BEGIN SELECT RAISE(ABORT, 'the audit trail starts at seq 1'); END""")
    op.add_column("audit_chain_head",
                  sa.Column("newest_recorded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("audit_chain_head", sa.Column("time_disorder_us", sa.BigInteger(),
                                                nullable=False, server_default="0"))
    if postgresql:
        op.execute(MICROSECONDS)
        op.execute(SEAL_PENDING)
        op.execute(BACKFILL)
    else:
        _backfill_in_python()


def _backfill_in_python() -> None:
    """SQLite: the log read once in seq order (it keeps times as text, in UTC)."""
    connection = op.get_bind()
    newest, disorder = None, 0
    for (text,) in connection.execute(sa.text("SELECT recorded_at FROM audit_events "
                                              "ORDER BY seq")):
        at = datetime.fromisoformat(str(text))
        if newest is not None and at < newest:
            disorder = max(disorder, (newest - at) // _MICROSECOND)
        newest = at if newest is None else max(newest, at)
    connection.execute(sa.text("UPDATE audit_chain_head SET newest_recorded_at = :newest, "
                               "time_disorder_us = :disorder WHERE id = 1"),
                       {"newest": None if newest is None else newest.isoformat(sep=" ", timespec="microseconds"),
                        "disorder": disorder})


_MICROSECOND = datetime.resolution


def _revision_0008():
    """Migration 0008's module, whose sealer the downgrade puts back."""
    path = Path(__file__).with_name("0008_audit_sealed_in_batches.py")
    spec = importlib.util.spec_from_file_location("audit_revision_0008", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(_revision_0008().SEAL_PENDING.replace(
            "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
        op.execute("DROP FUNCTION _audit_us(interval)")
    op.drop_column("audit_chain_head", "time_disorder_us")
    op.drop_column("audit_chain_head", "newest_recorded_at")
    for table in TABLES:
        if postgresql:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_seq_from_1")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_seq_from_1")
