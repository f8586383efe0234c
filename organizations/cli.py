"""`flask org ...`: operators add organizations to the directory."""

import click
from flask.cli import AppGroup

from core.cli import echo_json
from core.db import transaction
from organizations import service
from organizations.models import ORGANIZATION_TYPES
from organizations.schemas import OrganizationSchema, OrganizationUpdateSchema

org_cli = AppGroup("org", help="Manage the directory's organizations.")


@org_cli.command("create")
@click.option("--name", required=True)
@click.option("--type", "type_", required=True, type=click.Choice(ORGANIZATION_TYPES))
@click.option("--county", "counties", multiple=True, help="A county served (repeatable).")
@click.option("--language", "languages", multiple=True, help="A BCP 47 tag (repeatable).")
@click.option("--accepting", is_flag=True, help="Accepts referrals from the start.")
def create_org(name, type_, counties, languages, accepting):
    """Add an organization; prints it as JSON."""
    name = name.strip()
    if not name or len(name) > 200:
        raise click.BadParameter("must be 1 to 200 characters", param_hint="--name")
    errors = OrganizationUpdateSchema().validate(
        {"counties": list(counties), "languages": list(languages)})
    if errors:
        raise click.UsageError(f"invalid options: {errors}")
    with transaction():
        organization = service.create_organization(
            name=name, type=type_, counties=counties, languages=languages,
            accepting_referrals=accepting,
        )
    echo_json(OrganizationSchema().dump(organization))
