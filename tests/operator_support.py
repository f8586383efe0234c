"""Run operator commands as an operator does: `.venv/bin/flask --app app ...` in a process of
its own, with the environment the README's production start sets."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
FLASK = Path(sys.executable).with_name("flask")
STRONG = "Xq7Lm2Rv9Tz4Kp8Wn3Hb6Fd1Jc5Gs0Ye"
#: A configured signing key, so that no command here writes a key into instance/.
SEED = "4PpF0AJpArWiFB4rG415+W7rli6AbBIRJKSz4StkuNs="


def environ(home: Path, database_url: str, **settings) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "APP_ENV": "production",
           "SECRET_KEY": STRONG, "AUDIT_SIGNING_KEY": SEED, "DATABASE_URL": database_url,
           "LOG_LEVEL": "WARNING"}
    env.update(settings)
    return {k: v for k, v in env.items() if v is not None}


def flask(env: dict, *args, cwd=ROOT, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLASK), "--app", "app", *args], cwd=cwd, env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=timeout, check=False)


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr[-800:]
    return json.loads(result.stdout)


def assert_failed_cleanly(result: subprocess.CompletedProcess, *, not_codes=(0,)):
    """The README's promise for a command that fails: a non-zero exit, nothing on standard
    output, a message on standard error, never a Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-1200:]
    assert result.returncode not in not_codes, (result.returncode, result.stderr[-400:])
    assert result.stdout == ""
    assert result.stderr.strip()


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def copy_sqlite(source_url: str, target: Path) -> str:
    shutil.copyfile(sqlite_path(source_url), target)
    return f"sqlite:///{target}"


def tamper_sqlite(path: Path, statement: str) -> None:
    """What someone with the file can do: drop the append-only triggers and change a row."""
    connection = sqlite3.connect(path)
    try:
        for table in ("audit_events", "audit_checkpoints"):
            for kind in ("update", "delete"):
                connection.execute(f"DROP TRIGGER IF EXISTS {table}_no_{kind}")
        connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def postgres_server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if url.startswith(("postgresql", "postgres:")):
        return url
    return os.environ.get("OPERATOR_TESTS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_database():
    """Yield the URL of a new PostgreSQL database, dropped afterwards; skip without a server."""
    from core.config import normalize_database_url

    server_url = sa.engine.make_url(normalize_database_url(postgres_server_url()))
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            name = f"ops_{uuid.uuid4().hex[:10]}"
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        server.dispose()
        pytest.skip("no PostgreSQL server")
    url = server_url.set(database=name)
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        yield plain, server
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()
