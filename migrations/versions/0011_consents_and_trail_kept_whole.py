"""Consents and the audit trail kept whole; indexes for caregiver checks and the action
filter; Part C paused time carried across 0010.

- PostgreSQL refuses TRUNCATE of consents and consent_parties (directly, or cascading from
  families or organizations), as it does for the audit tables: a statement trigger, since
  TRUNCATE fires no row trigger.
- SQLite refuses an INSERT whose key is already recorded on consents, consent_parties,
  audit_events (seq or id), audit_checkpoints and audit_listed_families. `INSERT OR REPLACE`
  deletes the row holding the key without firing its delete triggers (unless
  recursive_triggers is on), so it rewrote a recorded consent or event in place.
- A consent records how many organizations it names, `party_count` (backfilled from its
  parties), and both databases refuse a party row past that many: no organization can be
  added to a consent once recorded. The update triggers keep the count immutable with the
  rest of what a consent says.
- consents (grantor_caregiver_id) and (revocation_caregiver_id), for the check that a
  removed caregiver granted or revoked no consent and for those foreign keys; audit_events
  (action, seq), for the auditors' `action` filter.
- `timeline_paused_seconds`, which 0010 started at 0, is set to the seconds of every ended
  pause the referral's timeline shows, so a pause after 0010 is rounded up together with the
  earlier ones instead of on its own again. Only where replaying the timeline gives the
  referral's own due date and open pause (as 0009's rule, and 0010's for pauses ended since,
  moved them): a timeline written under an older rule of the service is left as 0010 left it.
  No due date moves, and nothing a partner sees changes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import importlib.util
from datetime import UTC, timedelta
from math import ceil
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: A recorded key is never inserted again (SQLite): table -> its keys, each a column tuple.
KEYS = {
    "consents": [("id",)],
    "consent_parties": [("consent_id", "organization_id")],
    "audit_events": [("seq",), ("id",)],
    "audit_checkpoints": [("seq",)],
    "audit_listed_families": [("family_id", "seq")],
}
INDEXES = (
    ("ix_consents_grantor_caregiver_id", "consents", ["grantor_caregiver_id"]),
    ("ix_consents_revocation_caregiver_id", "consents", ["revocation_caregiver_id"]),
    ("ix_audit_events_action_seq", "audit_events", ["action", "seq"]),
)
#: As referrals/models.py and referrals/service.py have them at this revision.
PAUSING_HOLD_REASONS = ("family_circumstances", "awaiting_consent")
TIMELINE_DAYS = timedelta(days=45)


def _revision_0003():
    """Migration 0003's module: what a consent says, which its triggers keep immutable."""
    path = Path(__file__).with_name("0003_families_and_consents.py")
    spec = importlib.util.spec_from_file_location("consent_revision_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refuse_change(recorded) -> str:
    """0003's consent_refuse_change, over the columns `recorded`."""
    now = ", ".join(f"NEW.{c}" for c in recorded)
    before = ", ".join(f"OLD.{c}" for c in recorded)
    return f"""
        CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'consents are never deleted'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF OLD.revoked_at IS NOT NULL THEN
                RAISE EXCEPTION 'a revoked consent never changes'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF ROW({now}) IS DISTINCT FROM ROW({before}) THEN
                RAISE EXCEPTION 'consents are immutable once recorded'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END $$
    """


def _sqlite_immutable(recorded) -> str:
    """0003's SQLite trigger refusing an update of what a consent says, over `recorded`."""
    return (f"CREATE TRIGGER consents_immutable BEFORE UPDATE OF {', '.join(recorded)} "
            "ON consents BEGIN SELECT RAISE(ABORT, 'consents are immutable once recorded'); "
            "END")


SQLITE_REVOKED_NEVER_CHANGE = (
    "CREATE TRIGGER consents_revoked_never_change BEFORE UPDATE ON consents "
    "WHEN OLD.revoked_at IS NOT NULL "
    "BEGIN SELECT RAISE(ABORT, 'a revoked consent never changes'); END")

#: The party rows beyond its count: a consent's are all inserted with it, in its transaction.
TOO_MANY_PARTIES = ("(SELECT count(*) FROM consent_parties WHERE consent_id = NEW.consent_id) "
                    ">= (SELECT party_count FROM consents WHERE id = NEW.consent_id)")

REFUSE_TRUNCATE = """
    CREATE FUNCTION consent_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'consents are never deleted: TRUNCATE on % refused', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$
"""

REFUSE_EXTRA_PARTY = f"""
    CREATE FUNCTION consent_party_refuse_extra() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Volatile: each row of a multi-row insert sees the rows inserted before it.
        IF {TOO_MANY_PARTIES} THEN
            RAISE EXCEPTION 'consents are immutable once recorded: % names no more parties',
                NEW.consent_id USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$
"""


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    recorded = _revision_0003().RECORDED
    if postgresql:
        op.add_column("consents", sa.Column("party_count", sa.Integer(), nullable=True))
        # Revoked consents refuse every update: the count is written past the trigger, under
        # ALTER TABLE's exclusive lock, before the trigger keeps it immutable too.
        op.execute("ALTER TABLE consents DISABLE TRIGGER consents_immutable")
        _count_parties()
        op.execute("ALTER TABLE consents ENABLE TRIGGER consents_immutable")
        op.alter_column("consents", "party_count", existing_type=sa.Integer(), nullable=False)
        op.execute(_refuse_change((*recorded, "party_count")))

        op.execute(REFUSE_TRUNCATE)
        for table in ("consents", "consent_parties"):
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse_truncate()")
        op.execute(REFUSE_EXTRA_PARTY)
        op.execute("CREATE TRIGGER consent_parties_no_extra BEFORE INSERT ON consent_parties "
                   "FOR EACH ROW EXECUTE FUNCTION consent_party_refuse_extra()")
    else:
        # SQLite adds a NOT NULL column only with a default; rebuilding the table instead
        # would drop its triggers and trip the foreign keys of consent_parties. Every consent
        # is written with its count.
        op.add_column("consents", sa.Column("party_count", sa.Integer(), nullable=False,
                                            server_default="0"))
        op.execute("DROP TRIGGER consents_immutable")
        op.execute("DROP TRIGGER consents_revoked_never_change")
        _count_parties()
        op.execute(_sqlite_immutable((*recorded, "party_count")))
        op.execute(SQLITE_REVOKED_NEVER_CHANGE)

        op.execute("CREATE TRIGGER consent_parties_no_extra BEFORE INSERT ON consent_parties "
                   f"WHEN {TOO_MANY_PARTIES} BEGIN SELECT RAISE(ABORT, "
                   "'consents are immutable once recorded'); END")
        for table, keys in KEYS.items():
            message = ("the audit trail is append-only" if table.startswith("audit_")
                       else "consents are immutable once recorded")
            held = " OR ".join(" AND ".join(f"{c} = NEW.{c}" for c in key) for key in keys)
            # Runs before REPLACE resolves the conflict: the recorded row is still there.
            op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                       f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {held}) "  # noqa: S608
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")

    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    _carry_paused_time()


def _count_parties():
    op.execute("UPDATE consents SET party_count = "
               "(SELECT count(*) FROM consent_parties WHERE consent_id = consents.id)")


def downgrade():
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    recorded = _revision_0003().RECORDED
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER consent_parties_no_extra ON consent_parties")
        op.execute("DROP FUNCTION consent_party_refuse_extra()")
        for table in ("consent_parties", "consents"):
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION consent_refuse_truncate()")
        op.execute(_refuse_change(recorded))
    else:
        for table in reversed(KEYS):
            op.execute(f"DROP TRIGGER {table}_no_replace")
        op.execute("DROP TRIGGER consent_parties_no_extra")
        # SQLite drops no column a trigger names.
        op.execute("DROP TRIGGER consents_immutable")
        op.execute(_sqlite_immutable(recorded))
    op.drop_column("consents", "party_count")
    # timeline_paused_seconds stays as carried: 0010's column, its downgrade drops it.


# -- Part C paused time ----------------------------------------------------------------------

_referrals = sa.table(
    "referrals", sa.column("id", sa.Uuid()), sa.column("part_c_identified_on", sa.Date()),
    sa.column("received_at", sa.DateTime(timezone=True)),
    sa.column("timeline_due_by", sa.Date()),
    sa.column("timeline_paused_since", sa.DateTime(timezone=True)),
    sa.column("timeline_paused_seconds", sa.Integer()))
_steps = sa.table(
    "referral_events", sa.column("referral_id", sa.Uuid()),
    sa.column("referral_version", sa.Integer()),
    sa.column("occurred_at", sa.DateTime(timezone=True)), sa.column("to_status", sa.String()),
    sa.column("reason", sa.String()), sa.column("organization_id", sa.Uuid()))
BATCH = 500


def _carry_paused_time():
    """Set each paused Part C referral's total to every ended pause its timeline shows."""
    connection = op.get_bind()
    paused_once = sa.exists().where(_steps.c.referral_id == _referrals.c.id,
                                    _steps.c.to_status == "on_hold",
                                    _steps.c.reason.in_(PAUSING_HOLD_REASONS))
    after = None
    while True:
        stmt = (sa.select(_referrals)
                .where(_referrals.c.part_c_identified_on.is_not(None),
                       _referrals.c.received_at.is_not(None),
                       _referrals.c.timeline_due_by.is_not(None), paused_once)
                .order_by(_referrals.c.id).limit(BATCH))
        if after is not None:
            stmt = stmt.where(_referrals.c.id > after)
        referrals = connection.execute(stmt).all()
        if not referrals:
            return
        after = referrals[-1].id
        # The moves a side made (a hold the service put on when a consent ended leaves the
        # clock as it is), in the timeline's order.
        steps = {}
        for step in connection.execute(
                sa.select(_steps.c.referral_id, _steps.c.occurred_at, _steps.c.to_status,
                          _steps.c.reason)
                .where(_steps.c.referral_id.in_([r.id for r in referrals]),
                       _steps.c.organization_id.is_not(None))
                .order_by(_steps.c.referral_id, _steps.c.referral_version)):
            steps.setdefault(step.referral_id, []).append(
                (_utc(step.occurred_at), step.to_status, step.reason))
        carried = []
        for referral in referrals:
            total = _paused_in_all(referral, steps.get(referral.id, []))
            if total is not None and total != referral.timeline_paused_seconds:
                carried.append({"referral": referral.id, "seconds": total})
        if carried:
            connection.execute(
                _referrals.update().where(_referrals.c.id == sa.bindparam("referral"))
                .values(timeline_paused_seconds=sa.bindparam("seconds")), carried)


def _paused_in_all(referral, steps) -> int | None:
    """The seconds of every ended pause, or None unless exactly one reading of the timeline
    gives the referral's due date, open pause and total since 0010: its first `since_0010`
    ended pauses each pushed the date by their own days (0009), the later ones by their
    total's (0010)."""
    totals = set()
    for since_0010 in range(len(steps) + 1):
        due, paused_since, ended = _replay(referral, steps, since_0010)
        if (due == referral.timeline_due_by
                and paused_since == _utc(referral.timeline_paused_since)
                and sum(ended[since_0010:]) == referral.timeline_paused_seconds):
            totals.add(sum(ended))
    return totals.pop() if len(totals) == 1 else None


def _replay(referral, steps, since_0010: int):
    """referrals/service.py _move_part_c_clock over the timeline, from receipt: the due date,
    the open pause and each ended pause's seconds."""
    received_at = _utc(referral.received_at)
    due = received_at.date() + TIMELINE_DAYS
    paused_since, ended = None, []
    for at, to, reason in steps:
        if at < received_at:
            continue
        pausing = to == "on_hold" and reason in PAUSING_HOLD_REASONS
        if paused_since is not None and not pausing:
            seconds = ceil((at - paused_since).total_seconds())
            ended.append(seconds)
            if len(ended) <= since_0010:
                due += timedelta(days=_whole_days(seconds))
            else:
                total = sum(ended[since_0010:])
                due += timedelta(days=_whole_days(total) - _whole_days(total - seconds))
            paused_since = None
        elif paused_since is None and pausing and due >= at.date():
            paused_since = at
    return due, paused_since, ended


def _whole_days(seconds: int) -> int:
    return ceil(seconds / 86400)


def _utc(instant):
    """SQLite hands timestamps back naive (stored in UTC)."""
    if instant is None:
        return None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
