"""Operator commands, run as an operator runs them, in a process of their own (README
"Operator commands"): JSON on standard output, and on failure a non-zero exit with a one-line
message on standard error, never a traceback; exit 1 of `audit verify` means the chain or a
checkpoint failed, and nothing else; 3 a database that is unreachable, behind the code,
read-only or busy."""

import contextlib
import json
import os
import sqlite3
import stat
import threading

import pytest

from tests.operator_support import (
    ROOT,
    assert_failed_cleanly,
    copy_sqlite,
    environ,
    flask,
    ok_json,
    postgres_database,
    tamper_sqlite,
)

pytestmark = pytest.mark.no_db


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A migrated SQLite database holding three operator events and a checkpoint of them."""
    folder = tmp_path_factory.mktemp("ops")
    url = f"sqlite:///{folder / 'template.sqlite3'}"
    env = environ(folder, url)
    ok_json(flask(env, "db", "upgrade"))
    for name in ("Clinic One", "Clinic Two", "Clinic Three"):
        ok_json(flask(env, "org", "create", "--name", name, "--type", "hospital"))
    checkpoint = ok_json(flask(env, "audit", "checkpoint"))
    assert checkpoint["seq"] == 3
    return url


@pytest.fixture
def database(migrated, tmp_path):
    """A copy of the migrated database, and its environment."""
    url = copy_sqlite(migrated, tmp_path / "copy.sqlite3")
    return url, environ(tmp_path, url)


@pytest.fixture
def postgres():
    yield from postgres_database()


# --- audit verify ---------------------------------------------------------------------------


@pytest.mark.parametrize(("statement", "bad_seq"), [
    ("UPDATE audit_events SET recorded_at = 'yesterday' WHERE seq = 2", 2),
    ("UPDATE audit_events SET categories = 'not json' WHERE seq = 2", 2),
    ("UPDATE audit_events SET organization_id = 'someone' WHERE seq = 2", 2),
    ("UPDATE audit_checkpoints SET recorded_at = 'yesterday' WHERE seq = 3", 3),
])
def test_audit_verify_names_a_tampered_row_whose_value_is_not_of_its_type(database, statement,
                                                                           bad_seq):
    """SQLite keeps whatever is written into a column: someone with the file who rewrites an
    event's time, its categories or its actor with a value of another type has tampered
    with the trail as surely as one who changes an action. API.md: `audit verify` "prints the
    verify answer; exits ... 1 when the chain or a checkpoint does not verify, naming the
    first bad `seq`", and why."""
    url, env = database
    tamper_sqlite(url.removeprefix("sqlite:///"), statement)

    result = flask(env, "audit", "verify")

    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert verdict["valid"] is False
    assert verdict["first_bad_seq"] == bad_seq
    column = statement.split("SET ")[1].split(" ")[0]
    assert column in verdict["reason"] or "not signed" in verdict["reason"], verdict["reason"]


def test_audit_verify_on_a_read_only_database_verifies_what_is_chained(postgres):
    """ARCHITECTURE.md: auditors' queries "can be pointed at a read replica"; a standby (or a
    database or role whose transactions are read-only) refuses the sealing `audit verify`
    does first. It seals nothing there and verifies the chain as the primary sealed it: exit
    0, not 1 (the tamper alarm) nor a traceback."""
    url, server = postgres
    env = environ(ROOT, url)
    ok_json(flask(env, "db", "upgrade"))
    ok_json(flask(env, "org", "create", "--name", "Clinic", "--type", "hospital"))
    assert ok_json(flask(env, "audit", "verify"))["head"]["seq"] == 1  # sealed
    # An operator's change, committed and not yet sealed (no worker runs here).
    ok_json(flask(env, "org", "create", "--name", "Clinic Two", "--type", "hospital"))
    name = url.rsplit("/", 1)[1]
    with server.connect() as connection:
        connection.exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')

    result = flask(env, "audit", "verify")

    verdict = ok_json(result)
    assert (verdict["valid"], verdict["checked"], verdict["head"]["seq"]) == (True, 1, 1)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ["org", "create", "--name", "Kent County Early Head Start", "--type", "early_head_start"],
    ["audit", "checkpoint"],
    ["referrals", "hold-expired"],
])
def test_a_command_on_a_read_only_postgresql_database_fails_with_a_message(postgres, args):
    """A command that must write, against a database that refuses writes (a standby, a
    read-only role or database): one line on standard error and exit 3, not the driver's
    traceback with the SQL it ran."""
    url, server = postgres
    env = environ(ROOT, url)
    ok_json(flask(env, "db", "upgrade"))
    ok_json(flask(env, "org", "create", "--name", "Clinic", "--type", "hospital"))
    assert flask(env, "audit", "verify").returncode == 0  # sealed: there is a head to sign
    name = url.rsplit("/", 1)[1]
    with server.connect() as connection:
        connection.exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')

    result = flask(env, *args)

    assert_failed_cleanly(result)
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_command_on_a_read_only_sqlite_file_fails_with_a_message(database):
    """A SQLite file the command may not write (opened read-only: what SQLite says of a file
    or folder the service's account cannot write is the same "attempt to write a readonly
    database"). README: a message on standard error, never a traceback."""
    url, env = database
    read_only = f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    env = {**env, "DATABASE_URL": read_only}
    assert ok_json(flask(env, "audit", "verify"))["valid"] is True  # it reads it

    result = flask(env, "org", "create", "--name", "Kent County Early Head Start",
                   "--type", "early_head_start")

    assert_failed_cleanly(result)
    assert result.returncode == 3


@pytest.mark.parametrize("args", [
    ["org", "create", "--name", "Kent County Early Head Start", "--type", "early_head_start"],
    ["referrals", "hold-expired"],
])
def test_a_command_meeting_a_busy_sqlite_database_fails_with_a_message(database, args):
    """Another process holds SQLite's one write lock past busy_timeout (a long migration, a
    stuck worker, an operator's sqlite3 shell): `referrals hold-expired` runs from cron, and
    its mail should say what happened. README: a message on standard error, never a
    traceback: one line and exit 3, as PostgreSQL's lock and serialization failures."""
    url, env = database
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = flask(env, *args)
    finally:
        holder.close()

    assert_failed_cleanly(result)
    assert result.returncode == 3
    assert "busy" in result.stderr


# --- a database behind the code -------------------------------------------------------------


@pytest.fixture
def older(tmp_path):
    """A database migrated to 0006 only (a deployment whose `db upgrade` has not run yet)."""
    url = f"sqlite:///{tmp_path / 'older.sqlite3'}"
    env = environ(tmp_path, url)
    assert ok_json(flask(env, "db", "upgrade", "0006"))["revision"] == "0006"
    return env


def test_demo_seed_on_a_database_not_yet_upgraded_says_to_upgrade(older):
    """README: exit 3 "when its database is unreachable or has no schema yet", with a
    message; `./scripts/serve` and the README's PostgreSQL start run `demo seed` right after
    `db upgrade`; on a database at an older revision it says to upgrade, not a traceback
    ("table consents has no column named party_count")."""
    result = flask(older, "demo", "seed")

    assert_failed_cleanly(result)
    assert result.returncode == 3
    assert "run `flask --app app db upgrade`" in result.stderr


@pytest.mark.parametrize("args", [
    ["org", "create", "--name", "Kent County Early Head Start", "--type", "early_head_start"],
    ["audit", "verify"],
])
def test_a_command_on_a_database_behind_the_code_refuses_as_the_service_does(older, args):
    """The service answers every call 503 while "its schema is not at the newest migration
    yet" (README "Conventions"), and /readyz says so; the operator commands go ahead on the
    same database: `org create` writes into it and `audit verify` calls a trail verified
    that the code's own chain rules (migrations 0008, 0011) have not been applied to. A
    careful operator expects the commands to refuse it as the service does: exit 3 and "run
    `flask --app app db upgrade`"."""
    result = flask(older, *args)

    assert_failed_cleanly(result)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "Error: The database schema is not at the newest migration: "
        "run `flask --app app db upgrade`"]


# --- the SQLite file ------------------------------------------------------------------------


def test_a_read_only_database_file_is_not_made_writable(database):
    """README: "A SQLite file (and its -wal and -shm) is made readable by the service's
    account alone". An operator who made a copy read-only (0444: a snapshot handed to an
    auditor) and runs `audit verify` on it must find it as read-only as it made it: taking
    away the other accounts' access never grants the owner write access."""
    url, env = database
    path = url.removeprefix("sqlite:///")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.chmod(path, 0o444)

    assert ok_json(flask(env, "audit", "verify"))["valid"] is True

    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & 0o077 == 0  # readable by the owner alone, as promised
    assert mode & 0o200 == 0, f"the read-only file is now {mode:o}"


# --- org create ------------------------------------------------------------------------------


def test_two_org_creates_at_once_list_one_organization(postgres, monkeypatch):
    """The twin check of `org create` is a SELECT before the INSERT: two runs at once (a
    retried deployment step, two operators) on PostgreSQL both find no twin. The unique index
    (migration 0015) refuses the second, which exits 1, as a second run does."""
    import click
    import flask_migrate

    import audit
    from core.db import db
    from organizations.cli import org_cli
    from tests.conftest import make_app

    url, _ = postgres
    served = make_app(url)
    with served.app_context():
        flask_migrate.upgrade()
        db.session.remove()

    record = audit.record_operator
    both_checked = threading.Barrier(2, timeout=5)

    def record_after_both_checked(*args, **kwargs):
        # When the other waits on this one's row (a constraint), go on alone.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait()
        return record(*args, **kwargs)

    monkeypatch.setattr(audit, "record_operator", record_after_both_checked)
    outcomes = []

    def run():
        command = org_cli.commands["create"]
        with served.app_context(), click.Context(command):
            try:
                command.callback(
                    name="Kent County Early Head Start", type_="early_head_start",
                    counties=(), languages=(), accepting=False)
                outcomes.append(0)
            except click.ClickException as error:
                outcomes.append(error.exit_code)
            except Exception as error:  # noqa: BLE001
                outcomes.append(f"{type(error).__name__}: {error}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        with served.app_context():
            from organizations.models import Organization

            listed = db.session.query(Organization).filter_by(type="early_head_start").count()
            db.session.remove()
    finally:
        with served.app_context():
            db.engine.dispose()

    assert sorted(outcomes, key=str) == [0, 1]
    assert listed == 1
