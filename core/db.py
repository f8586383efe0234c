"""The database: declarative base, Flask-SQLAlchemy, column types, and the transaction boundary."""

import os
import sqlite3
import stat
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, registry

#: The largest value of a BigInteger column (a signed 64-bit integer on both databases).
BIGINT_MAX = 2**63 - 1

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC timestamp on both databases (SQLite hands back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use core.time.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def one_of(column: str, values, name: str | None = None) -> sa.CheckConstraint:
    """A CHECK that `column` holds one of `values` (NULL passes), named after the column."""
    return sa.CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})",
                              name=name or column)


class Base(DeclarativeBase):
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # pysqlite's own BEGIN handling breaks savepoints; SQLAlchemy emits BEGIN itself (below).
    dbapi_connection.isolation_level = None
    # SQLite's lower() folds ASCII only; PostgreSQL's folds every script. Make them agree.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    for _, name, path in cursor.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            _owner_only(path)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # FULL: each commit reaches the disk before it is answered. NORMAL syncs WAL mode only at
    # checkpoints, and a power loss would take back answered revocations and audit events.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _owner_only(path: str) -> None:
    """The database file holds every family's record: readable by the service's account
    alone (SQLite creates it, and its -wal and -shm, with the process's umask, often 0644),
    before anything is written to it. Only group's and others' bits are taken away: a file
    the owner made read-only (a snapshot handed to an auditor) stays read-only."""
    for each in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(each).st_mode
            if mode & 0o077:
                os.chmod(each, stat.S_IMODE(mode) & 0o700)
        except FileNotFoundError:
            continue


def _lower(value):
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Engine, "handle_error")
def _renew_connections_refusing_writes(context) -> None:
    """A PostgreSQL database that refuses writes (SQLSTATE 25006) is answered 503, and the
    connection that met the refusal is let go: one opened while it was read-only (a standby,
    or `default_transaction_read_only` set while the disk was full) keeps that setting for its
    whole life, so the service would keep refusing after the database writes again."""
    if getattr(context.original_exception, "sqlstate", None) == "25006":
        context.is_disconnect = True
        # That connection only: each pooled one goes at its own first refusal. The whole
        # pool at every refusal would reconnect every request thread for as long as the
        # database refuses (the background sealer alone meets it 5 times a second).
        context.invalidate_pool_on_disconnect = False


@event.listens_for(Engine, "begin")
def _begin_sqlite(connection):
    if connection.dialect.name == "sqlite":
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with SQLITE_BUSY instead of waiting, when several workers share the file.
        # A transaction that only reads begins deferred: a reader beside the one writer (WAL),
        # with one snapshot from its first read, that keeps no one waiting however long it reads.
        read_only = connection.get_execution_options().get("read_only")
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def begin_read_only() -> None:
    """Begin the session's transaction as one that only reads (before its first statement):
    long reads of the trail (an export streaming for minutes, a verification of the whole
    log) must not hold SQLite's one write lock, which every other request waits for."""
    db.session.connection(execution_options={"read_only": True})


@contextmanager
def transaction():
    """Commit the session once on success, roll back on any exception (CLI and scripts)."""
    try:
        yield db.session
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
