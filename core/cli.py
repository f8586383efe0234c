"""Helpers for operator commands: JSON on standard output, one transaction per command, and a
message instead of a traceback when the database has no schema yet."""

import json
import uuid

import click
import sqlalchemy as sa
from flask.cli import AppGroup


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
    """A command group whose commands, run against a database not migrated yet, say so and
    exit 1, rather than print the driver's traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            if not any(words in str(error.orig) for words in _NO_TABLE):
                raise
            raise click.ClickException(
                "The database has no schema yet: run `flask db upgrade` first") from None
