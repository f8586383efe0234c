"""`flask demo seed`: a small network to try the service with, safe to run again."""

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from auth import service as clients
from auth.cli import client_document
from auth.models import OAuthClient
from auth.scopes import SCOPES
from core.cli import echo_json
from core.db import db, transaction
from organizations import service as directory
from organizations.models import Organization
from organizations.schemas import OrganizationSchema

PARTNER_SCOPES = [scope for scope in SCOPES if scope != "audit:read"]
AUDITOR_SCOPES = ["directory:read", "audit:read"]

#: (name, type, counties, languages, accepting referrals, capacity, scopes)
DEMO_NETWORK = [
    ("Washtenaw Pediatric Associates", "pediatric_primary_care", ["Washtenaw"], ["en", "es"],
     False, None, PARTNER_SCOPES),
    ("Washtenaw County Child Welfare", "child_welfare", ["Washtenaw"], ["en"],
     False, None, PARTNER_SCOPES),
    ("Early On Washtenaw", "early_intervention", ["Washtenaw", "Livingston"], ["en", "es"],
     True, ("available", None), PARTNER_SCOPES),
    ("Riverbend Infant Mental Health", "imh_provider", ["Washtenaw", "Jackson"], ["en", "es"],
     True, ("available", None), PARTNER_SCOPES),
    ("Little Steps Parent-Infant Therapy", "imh_provider", ["Washtenaw", "Wayne"], ["en", "ar"],
     True, ("waitlist", "1_3_months"), PARTNER_SCOPES),
    ("Network Privacy Office", "community_other", [], ["en"],
     False, None, AUDITOR_SCOPES),
]

demo_cli = AppGroup("demo", help="The demo network.")


def _demo_client_name(organization: Organization) -> str:
    return f"demo: {organization.name}"


@demo_cli.command("seed")
def seed():
    """Create the demo organizations and one client each; prints them with fresh secrets.

    Run again, it keeps the organizations and gives each demo client a new secret.
    """
    documents, issued = [], []
    with transaction():
        for name, type_, counties, languages, accepting, capacity, scopes in DEMO_NETWORK:
            organization = db.session.scalar(
                sa.select(Organization).where(Organization.name == name,
                                              Organization.type == type_))
            if organization is None:
                organization = directory.create_organization(
                    name=name, type=type_, counties=counties, languages=languages,
                    accepting_referrals=accepting)
                if capacity is not None:
                    organization.capacity_status, organization.capacity_waitlist = capacity
                    organization.capacity_updated_at = organization.created_at
            client = db.session.scalar(
                sa.select(OAuthClient).where(
                    OAuthClient.organization_id == organization.id,
                    OAuthClient.name == _demo_client_name(organization),
                    OAuthClient.revoked_at.is_(None)))
            if client is None:
                result = clients.create_client(organization_id=organization.id, scopes=scopes,
                                               name=_demo_client_name(organization))
            else:
                result = clients.rotate_secret(client)
            db.session.flush()
            documents.append(OrganizationSchema().dump(organization))
            issued.append(client_document(result.client, result.client_secret))
    echo_json({"organizations": documents, "clients": issued})
    click.echo("Demo network ready; the secrets above are shown only once.", err=True)
