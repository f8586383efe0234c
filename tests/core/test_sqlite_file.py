"""The SQLite file README's `./scripts/serve` creates under instance/ holds every family's
record and the whole trail: it must be as private, and its commits as lasting, as the
service promises its callers."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.db import db

ROOT = Path(__file__).resolve().parents[2]


def _sqlite_only(app):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("the embedded SQLite file only")


@pytest.mark.no_db
def test_the_database_file_is_readable_by_its_owner_only(app, tmp_path):
    """`flask db upgrade`, as `./scripts/serve` runs it, creates the database that will hold
    children's names and birth dates, caregivers' phones, consents and the audit trail:
    readable by the service's account alone, as instance/secret_key and the signing key are,
    though the process's umask (022) would make it 0644 (and SQLite its -wal and -shm)."""
    _sqlite_only(app)
    database = tmp_path / "instance" / "imh.sqlite3"
    database.parent.mkdir()
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": f"sqlite:///{database}",
           "SECRET_KEY": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0"}
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
                   cwd=ROOT, env=env, check=True, capture_output=True,
                   umask=0o022)
    mode = stat.S_IMODE(database.stat().st_mode)
    assert mode & 0o077 == 0, f"{database.name} is {mode:o}: other accounts can read it"


@pytest.mark.no_db
def test_a_commit_answered_to_the_client_survives_a_power_loss(served):
    """An answered request is done: a revocation answered 200 is still revoked, and a
    disclosure's audit event still on the trail, after the host loses power. With WAL,
    `synchronous=NORMAL` syncs only at checkpoints ("a transaction committed in WAL mode with
    synchronous=NORMAL might roll back following a power loss", sqlite.org/pragma.html);
    FULL syncs each commit."""
    _sqlite_only(served)
    with db.engine.connect() as connection:
        level = connection.execute(sa.text("PRAGMA synchronous")).scalar_one()
    assert level >= 2, f"PRAGMA synchronous is {level} (1 = NORMAL): commits are not synced"
