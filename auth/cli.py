"""`flask client ...`: operators register, list and retire partner agencies' clients."""

import click
from marshmallow import ValidationError

from auth import service
from core.cli import UUID, OperatorGroup, echo_json
from core.db import db, transaction
from core.schemas import text
from core.time import rfc3339
from organizations.models import Organization

client_cli = OperatorGroup("client", help="Manage OAuth clients.")


def client_document(client, secret: str | None = None) -> dict:
    """A client as operators see it; the secret only when just issued."""
    document = {"client_id": client.client_id}
    if secret is not None:
        document["client_secret"] = secret
    document.update({
        "organization_id": str(client.organization_id),
        "name": client.name,
        "scopes": client.scopes,
        "created_at": rfc3339(client.created_at),
        "revoked_at": rfc3339(client.revoked_at),
    })
    return document


@client_cli.command("create")
@click.option("--organization", "organization_id", required=True, type=UUID)
@click.option("--scopes", required=True, help='Space-separated, e.g. "directory:read".')
@click.option("--name", default=None, help="What the client is (defaults to the organization).")
def create_client(organization_id, scopes, name):
    """Register a client; prints its id and secret (the secret is shown only here)."""
    if name is not None:
        try:
            # The API's own rule for a name: NFC, one line, stripped, no control characters.
            name = text(200, required=True).deserialize(name)
        except ValidationError:
            raise click.BadParameter("must be 1 to 200 visible characters, on one line, "
                                     "without control characters",
                                     param_hint="--name") from None
    with transaction():
        organization = _organization(organization_id)
        try:
            issued = service.create_client(
                organization_id=organization.id, scopes=scopes.split(),
                name=name or organization.name,
            )
        except service.ClientError as error:
            raise click.BadParameter(str(error), param_hint="--scopes") from None
    echo_json(client_document(issued.client, issued.client_secret))


@client_cli.command("list")
@click.option("--organization", "organization_id", type=UUID, default=None)
def list_clients(organization_id):
    """List clients (never their secrets)."""
    if organization_id is not None:
        _organization(organization_id)  # a mistyped id is not an organization without clients
    echo_json([client_document(c) for c in service.list_clients(organization_id=organization_id)])


@client_cli.command("revoke")
@click.argument("client_id", type=UUID)
def revoke_client(client_id):
    """Retire a client and every token it holds."""
    with transaction():
        client = service.revoke_client(client_id)
        if client is None:
            raise click.ClickException(f"no client {client_id}")
    echo_json(client_document(client))


def _organization(organization_id) -> Organization:
    """The organization; raises ClickException (exit 1, one line) when there is none."""
    organization = db.session.get(Organization, organization_id)
    if organization is None:
        raise click.ClickException(f"no organization {organization_id}")
    return organization
