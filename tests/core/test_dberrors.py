"""The one reading of a database error (core/dberrors.py) that the service's 503s and the
operator commands' exit 3 both follow: errors as the drivers raise them, made here."""

import sqlite3
from types import SimpleNamespace

import psycopg
import pytest
import sqlalchemy as sa

from core.dberrors import Kind, diagnose

pytestmark = pytest.mark.no_db

#: Where PL/pgSQL says an error came from when a function of the service RAISEd it.
TRIGGER_CONTEXT = "PL/pgSQL function audit_pending_guard() line 8 at RAISE"


class Driver(Exception):
    """A driver's error as SQLAlchemy finds it: its SQLSTATE and diagnostics."""

    def __init__(self, message, *, sqlstate=None, context=None):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.diag = SimpleNamespace(context=context)


def _sqlite(message: str, name: str) -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorname = name
    return error


def _wrapped(orig, *, statement="SELECT 1", wrapper=None, invalidated=False):
    if wrapper is None:
        wrapper = sa.exc.OperationalError if isinstance(orig, (
            psycopg.OperationalError, sqlite3.OperationalError)) else sa.exc.ProgrammingError
    return wrapper(statement, {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(("orig", "kind"), [
    (psycopg.errors.SerializationFailure("x"), Kind.BUSY),
    (psycopg.errors.DeadlockDetected("x"), Kind.BUSY),
    (psycopg.errors.LockNotAvailable("x"), Kind.BUSY),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), Kind.BUSY),
    (_sqlite("database is locked", "SQLITE_BUSY"), Kind.BUSY),
    (_sqlite("database table is locked", "SQLITE_LOCKED_SHAREDCACHE"), Kind.BUSY),
    (psycopg.errors.UndefinedTable('relation "x" does not exist'), Kind.SCHEMA_BEHIND),
    (psycopg.errors.UndefinedColumn('column "x" does not exist'), Kind.SCHEMA_BEHIND),
    (psycopg.errors.UndefinedFunction("function x() does not exist"), Kind.SCHEMA_BEHIND),
    (_sqlite("no such table: consents", "SQLITE_ERROR"), Kind.SCHEMA_BEHIND),
    (_sqlite("no such column: party_count", "SQLITE_ERROR"), Kind.SCHEMA_BEHIND),
    (_sqlite("table consents has no column named party_count", "SQLITE_ERROR"),
     Kind.SCHEMA_BEHIND),
    (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
     Kind.READ_ONLY),
    (_sqlite("attempt to write a readonly database", "SQLITE_READONLY"), Kind.READ_ONLY),
    (psycopg.errors.InsufficientPrivilege("permission denied for function x"),
     Kind.NO_PRIVILEGE),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
     Kind.UNREACHABLE),
    (psycopg.errors.DiskFull("could not extend file"), Kind.UNREACHABLE),
    (psycopg.errors.TooManyConnections("sorry, too many clients already"), Kind.UNREACHABLE),
    (psycopg.errors.IoError("could not read block"), Kind.UNREACHABLE),
    (Exception("server closed the connection unexpectedly"), Kind.UNREACHABLE),
    (_sqlite("disk I/O error", "SQLITE_IOERR_WRITE"), Kind.UNREACHABLE),
    (_sqlite("database or disk is full", "SQLITE_FULL"), Kind.UNREACHABLE),
])
def test_what_keeps_the_database_from_the_work_is_named(orig, kind):
    diagnosis = diagnose(_wrapped(orig, wrapper=sa.exc.OperationalError
                                  if type(orig) is Exception else None))
    assert diagnosis is not None and diagnosis.kind is kind


def test_the_service_s_own_trigger_refusing_a_change_is_a_fault_of_the_code():
    """The append-only trail and the consents' triggers RAISE 42501, the code of a grant
    taken away: a fault of the code, which no retry and no grant mends (neither 503 nor
    exit 3)."""
    refused = Driver("the audit trail is append-only (UPDATE)", sqlstate="42501",
                     context=TRIGGER_CONTEXT)
    assert diagnose(_wrapped(refused)) is None
    granted_away = Driver("permission denied for table audit_events", sqlstate="42501")
    assert diagnose(_wrapped(granted_away)).kind is Kind.NO_PRIVILEGE


@pytest.mark.parametrize("orig", [
    psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
    psycopg.errors.InvalidTextRepresentation("invalid input syntax for type integer"),
    psycopg.errors.RaiseException("consents are immutable once recorded"),
])
def test_a_statement_the_database_refuses_is_a_fault_of_the_code(orig):
    wrapper = {psycopg.errors.UniqueViolation: sa.exc.IntegrityError,
               psycopg.errors.InvalidTextRepresentation: sa.exc.DataError,
               psycopg.errors.RaiseException: sa.exc.InternalError}[type(orig)]
    assert diagnose(_wrapped(orig, wrapper=wrapper)) is None


@pytest.mark.parametrize("orig", [
    _sqlite('near "SELEC": syntax error', "SQLITE_ERROR"),
    _sqlite("malformed JSON", "SQLITE_ERROR"),
    psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum"),
    psycopg.errors.ObjectNotInPrerequisiteState("currval of sequence is not yet defined"),
    psycopg.errors.InvalidSavepointSpecification("savepoint does not exist"),
])
def test_a_statement_refused_for_itself_is_no_outage_though_the_driver_says_operational(orig):
    """The drivers raise OperationalError for more than outages: SQLite for any error in a
    statement (SQLITE_ERROR), psycopg for SQLSTATE classes such as 54 and 55 and 3B. The
    database was there and answered: a fault of the code (500; a command's own failure),
    not "the database is unreachable"."""
    assert diagnose(_wrapped(orig, wrapper=sa.exc.OperationalError)) is None


def test_a_connection_that_failed_gives_the_driver_s_last_word_without_where_it_tried():
    refused = Exception('connection failed: connection to server at "10.0.0.7", port 5432 '
                        "failed: Connection refused\n\tIs the server running on that host?")
    diagnosis = diagnose(sa.exc.OperationalError(None, None, refused))
    assert diagnosis == (Kind.UNREACHABLE, "Connection refused")


def test_a_connection_found_lost_is_an_outage_whatever_the_driver_s_class():
    lost = psycopg.InterfaceError("the connection is lost")
    assert diagnose(_wrapped(lost, wrapper=sa.exc.InterfaceError,
                             invalidated=True)).kind is Kind.UNREACHABLE
