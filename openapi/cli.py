"""`flask openapi write|check`: keep the committed document equal to the code's."""

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from openapi.spec import COMMITTED, build_spec, to_yaml

openapi_cli = AppGroup("openapi", help="The OpenAPI document.")


@openapi_cli.command("write")
def write():
    """Regenerate openapi/openapi.yaml from the code."""
    COMMITTED.write_text(to_yaml(build_spec(current_app)))
    click.echo(f'{{"written": "{COMMITTED}"}}')


@openapi_cli.command("check")
def check():
    """Exit 1 when openapi/openapi.yaml differs from what the code generates."""
    if COMMITTED.read_text() != to_yaml(build_spec(current_app)):
        click.echo("openapi/openapi.yaml is stale: run `flask --app app openapi write`",
                   err=True)
        sys.exit(1)
    click.echo('{"current": true}')
