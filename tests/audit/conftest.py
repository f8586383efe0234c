"""The audit tests' auditor, and the trail's guards lifted the way whoever holds the database
can lift them, inside the test's rolled-back transaction."""

import pytest
import sqlalchemy as sa

from core.db import db


@pytest.fixture
def auditor(make):
    """A token of a privacy office that reads the trail (audit:read) and nothing else."""
    return make.token(make.organization(name="State Privacy Office", type="community_other"),
                      ["audit:read"])


def unlock(table: str) -> None:
    """Drop a trail table's append-only guard (rolled back with the test's transaction)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        for verb in ("update", "delete"):
            db.session.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
