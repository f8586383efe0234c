"""Helpers for operator commands: JSON on standard output, one transaction per command, and a
message instead of a traceback when the database is unreachable or has no schema yet."""

import json
import uuid

import click
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from flask.cli import AppGroup, with_appcontext
from flask_migrate.cli import db as migration_commands

from core.db import db


def echo_json(value) -> None:
    """Print a JSON document on standard output."""
    click.echo(json.dumps(value, indent=2, default=str))


class UUIDParam(click.ParamType):
    name = "uuid"

    def convert(self, value, param, ctx):
        if isinstance(value, uuid.UUID):
            return value
        try:
            return uuid.UUID(value)
        except ValueError:
            self.fail(f"{value!r} is not a UUID", param, ctx)


UUID = UUIDParam()


#: How each database says a table does not exist (SQLite; PostgreSQL's UndefinedTable).
_NO_TABLE = ("no such table", "does not exist")


class DatabaseNotReady(click.ClickException):
    """The command did not run: its database cannot be reached, or has no schema yet.

    Its own exit status, 3, so that no status a command gives a meaning (`audit verify`'s 1:
    the chain or a checkpoint failed) ever stands for an outage.
    """

    exit_code = 3


class OperatorGroup(AppGroup):
    """A command group whose commands, run against a database that cannot be reached or is
    not migrated yet, say so and exit 3, rather than print the driver's traceback."""

    #: Whether a missing table means the schema is not there yet (not for `db` itself, whose
    #: own migrations may fail on a missing object for another reason).
    explains_missing_schema = True

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            # No statement: the failure was the connection's, not a query's. A connection lost
            # or a query cancelled midway (SQLSTATE classes 08, 57) or a transaction rolled back
            # (40) is an outage too: never exit 1, `audit verify`'s tamper alarm.
            sqlstate = getattr(error.orig, "sqlstate", None) or ""
            if isinstance(error, sa.exc.OperationalError) and (
                    error.statement is None or error.connection_invalidated
                    or sqlstate[:2] in ("08", "57", "40")):
                raise DatabaseNotReady(
                    f"The database is unreachable: {_short_reason(error)}") from None
            if not self.explains_missing_schema \
                    or not any(words in str(error.orig) for words in _NO_TABLE):
                raise
            raise DatabaseNotReady(
                "The database has no schema yet: run `flask db upgrade` first") from None


def _short_reason(error: sa.exc.DBAPIError) -> str:
    """The driver's last word on a failed connection ("Connection refused"), without the
    host, port or file it tried: the drivers put those first."""
    lines = str(error.orig).splitlines()
    return lines[0].rsplit(": ", 1)[-1].strip() if lines else type(error.orig).__name__


def _current_revision() -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _printing_revisions(upgrade: click.Command) -> click.Command:
    """Flask-Migrate's `db upgrade`, then the revision reached and the one it started from
    as JSON on standard output (Alembic reports its progress on standard error)."""

    @with_appcontext
    def upgrade_and_print(**options):
        before = _current_revision()
        click.get_current_context().invoke(upgrade.callback, **options)
        echo_json({"revision": _current_revision(), "from": before})

    return click.Command(upgrade.name, callback=upgrade_and_print, params=upgrade.params,
                         help=upgrade.help, short_help=upgrade.short_help)


#: The Flask-Migrate commands operators get: those that move the schema forward or read it,
#: and those that write revision files for developers. Left out: `downgrade`, whose revisions
#: drop the audit trail, the consents and the families (retention is years, and there is no
#: delete path), and `stamp`, which records a revision without running it, so that a later
#: upgrade skips migrations or runs them again. Named one by one, so a command a new
#: Flask-Migrate adds is not offered until someone has looked at it.
OFFERED_MIGRATION_COMMANDS = ("upgrade", "current", "heads", "history", "show", "branches",
                              "check", "revision", "migrate", "edit", "merge")

#: Flask-Migrate's `db` group with the commands offered, `db upgrade` printing JSON like
#: every operator command. A copy of the group: Flask-Migrate's own is left alone (tests
#: downgrade through `flask_migrate.downgrade`, not through the CLI).
db_cli = OperatorGroup(
    migration_commands.name, callback=migration_commands.callback,
    params=migration_commands.params, help=migration_commands.help,
    commands={name: command for name, command in migration_commands.commands.items()
              if name in OFFERED_MIGRATION_COMMANDS})
db_cli.add_command(_printing_revisions(migration_commands.commands["upgrade"]))
db_cli.explains_missing_schema = False
