"""What a database error says of the database, read once for the service and the operator
commands: the service answers such an error 503 with Retry-After (core/errors.py) and a
command exits 3 (core/cli.py); any other error is a fault of the code (500, or the command's
own failure), which no retry mends."""

import enum
from typing import NamedTuple

import sqlalchemy as sa


class Kind(enum.Enum):
    """Why the database did not do the work, when the fault is not the code's."""

    #: Others' work held what this needed past the wait (a deadlock, a serialization
    #: failure, a lock or statement timeout, SQLite's one writer): retry it at once.
    BUSY = "busy"
    #: A table, column or function the code needs is not there: the code is ahead of the
    #: database's migrations (served before `flask db upgrade`).
    SCHEMA_BEHIND = "schema-behind"
    #: The database accepts no writes (a hot standby, a read-only database, role or file).
    READ_ONLY = "read-only"
    #: The service's role may not do this (a grant taken away): the operator's to mend.
    NO_PRIVILEGE = "no-privilege"
    #: The connection or the server failed (refused, lost, shut down, out of disk or memory).
    UNREACHABLE = "unreachable"


class Diagnosis(NamedTuple):
    kind: Kind
    #: The driver's last word on it ("Connection refused"), without the host, port or file
    #: it tried. For an operator's terminal, not the log: a message can quote what was sent.
    reason: str


#: SQLSTATEs of an undefined table, column and function (PostgreSQL).
_UNDEFINED = ("42P01", "42703", "42883")
#: How SQLite says the same (an INSERT naming a column an older table lacks says the last).
_SQLITE_UNDEFINED = ("no such table", "no such column", "no such function",
                     "has no column named")
#: SQLSTATE classes of a server that cannot serve: a connection exception, insufficient
#: resources (disk full, out of memory, too many connections), operator intervention (a
#: shutdown, a terminated session) and a system error.
_OUTAGE_CLASSES = ("08", "53", "57", "58")


def diagnose(error: sa.exc.DBAPIError) -> Diagnosis | None:
    """Why the database could not do the work, or None when the error is a fault of the
    code (a statement it refuses, a constraint, one of the service's own triggers)."""
    kind = _kind(error)
    return None if kind is None else Diagnosis(kind, _short_reason(error))


def _kind(error: sa.exc.DBAPIError) -> Kind | None:
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or ""
    sqlite_error = getattr(orig, "sqlite_errorname", None) or ""
    if sqlstate[:2] == "40" or sqlstate in ("55P03", "57014") \
            or sqlite_error.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        # SQLITE_LOCKED: a table locked within the connection, PostgreSQL's 55P03.
        return Kind.BUSY
    if sqlstate in _UNDEFINED or (sqlite_error == "SQLITE_ERROR"
                                  and any(words in str(orig) for words in _SQLITE_UNDEFINED)):
        return Kind.SCHEMA_BEHIND
    if sqlstate == "25006" or sqlite_error.startswith("SQLITE_READONLY"):
        return Kind.READ_ONLY
    if sqlstate == "42501":
        # The service's own integrity triggers RAISE this code too (the trail is append-only,
        # a consent never changes): meeting one is a fault of the code, not a grant missing.
        context = getattr(getattr(orig, "diag", None), "context", None) or ""
        return None if "RAISE" in context else Kind.NO_PRIVILEGE
    if error.connection_invalidated:
        return Kind.UNREACHABLE
    if isinstance(error, sa.exc.OperationalError):
        if error.statement is None:  # no statement: connecting failed
            return Kind.UNREACHABLE
        if sqlite_error:
            # SQLITE_ERROR is the statement's own (a syntax error, a malformed argument);
            # the others are the file's: disk I/O, disk full, cannot open, corrupt.
            return None if sqlite_error == "SQLITE_ERROR" else Kind.UNREACHABLE
        if not sqlstate:  # the driver's own: the connection lost midway, before any answer
            return Kind.UNREACHABLE
        return Kind.UNREACHABLE if sqlstate[:2] in _OUTAGE_CLASSES else None
    return None


def _short_reason(error: sa.exc.DBAPIError) -> str:
    """The driver's last word on a failed connection ("Connection refused"), without the
    host, port or file it tried: the drivers put those first."""
    lines = str(error.orig).splitlines()
    return lines[0].rsplit(": ", 1)[-1].strip() if lines else type(error.orig).__name__
