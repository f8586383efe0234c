"""Helpers for operator commands: JSON on standard output, one transaction per command, and a
one-line message, exit 3, instead of a traceback when the database is unreachable, not at the
newest migration, refuses writes or stays busy."""

import functools
import json
import uuid

import click
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate.cli import db as migration_commands

from core.db import db
from core.dberrors import Kind, diagnose
from core.health import schema_at_head


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


#: The one line that tells an operator what to do about a schema behind the code.
UPGRADE_FIRST = "run `flask --app app db upgrade`"
_REFUSED = ("The database refuses this command's writes (read-only, or not this account's "
            "to change)")
#: What a command says when the database could not do its work (core/dberrors.py).
_NOT_READY = {
    Kind.BUSY: ("The database is busy: others' work held what this command needed past the "
                "wait; nothing was done, retry it"),
    Kind.SCHEMA_BEHIND: f"The database schema is not at the newest migration: {UPGRADE_FIRST}",
    # A hot standby, a read-only database or role, a file the account may not write; or a
    # grant the account lacks.
    Kind.READ_ONLY: _REFUSED,
    Kind.NO_PRIVILEGE: _REFUSED,
    Kind.UNREACHABLE: "The database is unreachable: {reason}",
}


class DatabaseNotReady(click.ClickException):
    """The command did not run: its database cannot be reached, is not migrated to the newest
    revision, refuses writes, or stayed busy with others' work.

    Its own exit status, 3, so that no status a command gives a meaning (`audit verify`'s 1:
    the chain or a checkpoint failed) ever stands for an outage.
    """

    exit_code = 3


class OperatorGroup(AppGroup):
    """A command group whose commands run only on a database at the newest migration, and
    that, against a database that cannot be reached, refuses writes or stays busy, say so in
    one line and exit 3, rather than print the driver's traceback."""

    #: Whether a missing table means the schema is not there yet, and the commands refuse a
    #: schema behind the code (not for `db` itself: it brings the schema there, and its own
    #: migrations may fail on a missing object for another reason).
    explains_missing_schema = True

    def command(self, *args, **kwargs):
        """AppGroup's `command`, whose callback first checks the schema's revision."""
        register = super().command(*args, **kwargs)

        def decorator(callback):
            @functools.wraps(callback)
            def at_head(*call_args, **call_kwargs):
                if self.explains_missing_schema:
                    require_schema_at_head()
                return callback(*call_args, **call_kwargs)

            return register(at_head)

        return decorator

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except sa.exc.DBAPIError as error:
            reason = self._not_ready(error)
            if reason is None:
                raise
            raise DatabaseNotReady(reason) from None

    def _not_ready(self, error: sa.exc.DBAPIError) -> str | None:
        """Why the database could not do the command's work (one line), or None when the
        error is the command's own (core/dberrors.py: the service's 503s read it alike)."""
        diagnosis = diagnose(error)
        if diagnosis is None or (diagnosis.kind is Kind.SCHEMA_BEHIND
                                 and not self.explains_missing_schema):
            return None
        return _NOT_READY[diagnosis.kind].format(reason=diagnosis.reason)


def require_schema_at_head() -> None:
    """Raise DatabaseNotReady unless the database's schema is at the newest migration, as
    the service answers 503 until it is. Read in a transaction of its own that only reads
    (on SQLite it takes no write lock, and `audit verify` then begins its own as a reader)."""
    session = db.session()
    options = {} if session.in_transaction() else {"execution_options": {"read_only": True}}
    at_head = schema_at_head(session.connection(**options))
    session.rollback()
    if not at_head:
        raise DatabaseNotReady(_NOT_READY[Kind.SCHEMA_BEHIND])


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


@click.command("current")
@with_appcontext
def _print_current_revision():
    """Print the database's revision, and whether it is the newest, as JSON."""
    with db.engine.connect() as connection:
        connection = connection.execution_options(read_only=True)
        revision = MigrationContext.configure(connection).get_current_revision()
        at_head = schema_at_head(connection)
    echo_json({"revision": revision, "head": at_head})


@click.command("heads")
@with_appcontext
def _print_heads():
    """Print the newest revisions the code knows, as JSON."""
    echo_json({"heads": sorted(current_app.extensions["migration_heads"])})


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
# JSON, like every operator command, in place of Alembic's text ("0015 (head)").
db_cli.add_command(_print_current_revision)
db_cli.add_command(_print_heads)
db_cli.explains_missing_schema = False
