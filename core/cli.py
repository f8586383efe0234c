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


class OperatorGroup(AppGroup):
    """A command group whose commands, run against a database that cannot be reached or is
    not migrated yet, say so and exit 1, rather than print the driver's traceback."""

    #: Whether a missing table means the schema is not there yet (not for `db` itself, whose
    #: own migrations may fail on a missing object for another reason).
    explains_missing_schema = True

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            # No statement: the failure was the connection's, not a query's.
            if isinstance(error, sa.exc.OperationalError) and error.statement is None:
                raise click.ClickException(
                    f"The database is unreachable: {_short_reason(error)}") from None
            if not self.explains_missing_schema \
                    or not any(words in str(error.orig) for words in _NO_TABLE):
                raise
            raise click.ClickException(
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


#: Flask-Migrate's `db` commands as they are, but `db upgrade` prints JSON like every
#: operator command. A copy of the group: Flask-Migrate's own is left alone.
db_cli = OperatorGroup(
    migration_commands.name, callback=migration_commands.callback,
    params=migration_commands.params, help=migration_commands.help,
    commands={**migration_commands.commands,
              "upgrade": _printing_revisions(migration_commands.commands["upgrade"])})
db_cli.explains_missing_schema = False
