"""`flask org ...`: operators add organizations to the directory."""

import click
import sqlalchemy as sa
from marshmallow import ValidationError

from core.cli import OperatorGroup, echo_json
from core.db import db, transaction
from core.text import name_key
from organizations import service
from organizations.models import ORGANIZATION_TYPES
from organizations.schemas import OrganizationCreateSchema, OrganizationSchema

org_cli = OperatorGroup("org", help="Manage the directory's organizations.")


@org_cli.command("create")
@click.option("--name", required=True)
@click.option("--type", "type_", required=True, type=click.Choice(ORGANIZATION_TYPES))
@click.option("--county", "counties", multiple=True, help="A county served (repeatable).")
@click.option("--language", "languages", multiple=True, help="A BCP 47 tag (repeatable).")
@click.option("--accepting", is_flag=True, help="Accepts referrals from the start.")
def create_org(name, type_, counties, languages, accepting):
    """Add an organization; prints it as JSON."""
    try:
        # The API's own rules for text: NFC, one line, stripped; tags in canonical case.
        given = OrganizationCreateSchema().load(
            {"name": name, "counties": list(counties), "languages": list(languages)})
    except ValidationError as error:
        if "name" in error.messages:
            raise click.BadParameter("must be 1 to 200 visible characters, on one line",
                                     param_hint="--name") from None
        raise click.UsageError(f"invalid options: {error.messages}") from None
    name, counties, languages = given["name"], given["counties"], given["languages"]
    # The directory's key is the name casefolded, which may grow (ß is ss): both must fit.
    if len(name_key(name)) > 200:
        raise click.BadParameter("must be 1 to 200 characters, case-folded too",
                                 param_hint="--name")
    try:
        with transaction():
            twin = _twin(name, type_)
            if twin is None:
                organization = service.create_organization(
                    name=name, type=type_, counties=counties, languages=languages,
                    accepting_referrals=accepting,
                )
    except sa.exc.IntegrityError:
        # Another run added it after this one looked: the unique index (migration 0015) held.
        twin = _twin(name, type_)
        db.session.rollback()
        if twin is None:
            raise
    if twin is not None:
        # A retried command, most often; two entries alike would leave partners unable to
        # tell which one to refer to.
        raise click.ClickException(
            f"the directory already lists a {type_} of that name: {twin}; give this one "
            "a name that tells them apart")
    echo_json(OrganizationSchema().dump(organization))


def _twin(name: str, type_: str):
    """The id of the organization of this name (by its key) and type, or None."""
    twin = service.listed_as(name, type_)
    return None if twin is None else twin.id
