"""Liveness and readiness for load balancers and orchestrators."""

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from core.db import db
from core.errors import unavailable

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def migration_heads(migrations_dir: Path) -> set[str]:
    """The head revisions the code expects."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    return set(ScriptDirectory.from_config(config).get_heads())


def schema_at_head(connection) -> bool:
    """Whether the database's schema is at the newest migration the code knows: the service
    answers 503 otherwise, and the operator commands refuse to run."""
    # Read here rather than through alembic's MigrationContext, which logs two lines each
    # time: a probe every few seconds would fill the log.
    current = set(connection.scalars(sa.text("SELECT version_num FROM alembic_version"))) \
        if sa.inspect(connection).has_table("alembic_version") else set()
    return current == current_app.extensions["migration_heads"]


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return jsonify(status="ok")


#: A primary that refuses writes (a standby's refusal is its nature: auditors may read there).
_READ_ONLY = sa.text("SELECT current_setting('transaction_read_only') = 'on' "
                     "AND NOT pg_is_in_recovery()")


@bp.get("/readyz")
def readyz():
    """The database answers, accepts writes (every audited request writes its event), and
    its schema is at the newest migration; else 503."""
    try:
        connection = db.session.connection()
        at_head = schema_at_head(connection)
        read_only = connection.dialect.name == "postgresql" and connection.scalar(_READ_ONLY)
    except SQLAlchemyError as error:
        log.warning("readiness: database unreachable (%s)", type(error).__name__)
        raise unavailable("The database is unreachable") from None
    if read_only:
        # Opened while the database refused writes, this connection would keep refusing
        # after it writes again: the next probe opens a fresh one.
        connection.invalidate()
        log.warning("readiness: database accepts no writes")
        raise unavailable("The database accepts no writes")
    if not at_head:
        raise unavailable("The database schema is not at the newest migration", retry_after=30)
    return jsonify(status="ready", database="ok", migrations="head")
