"""Helpers for operator commands: JSON on standard output, one transaction per command."""

import json
import uuid

import click


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
