"""`flask demo seed`: a small network to try the service with, safe to run again."""

from datetime import date, timedelta
from types import SimpleNamespace

import click
import sqlalchemy as sa

from auth import service as clients
from auth.cli import client_document
from auth.models import OAuthClient
from auth.scopes import SCOPES
from consent import policy
from consent import service as consents
from core.cli import OperatorGroup, echo_json
from core.db import db, transaction
from core.errors import Problem
from core.time import now
from families import service as families
from families.models import Family
from organizations import service as directory
from organizations.models import Organization
from organizations.schemas import OrganizationSchema
from referrals import service as referrals
from referrals.models import ACTIVE_STATUSES, Referral

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

demo_cli = OperatorGroup("demo", help="The demo network.")


def _demo_client_name(organization: Organization) -> str:
    return f"demo: {organization.name}"


#: A fictional family; nothing about it is real.
DEMO_FAMILY = {
    "child": {"given_name": "Mia", "family_name": "Demo", "birth_date": date(2026, 5, 14),
              "county": "Washtenaw"},
    "caregivers": [{"given_name": "Rosa", "family_name": "Demo", "relationship": "mother",
                    "has_legal_authority": True, "phone": "+17345550199", "email": None}],
    "preferred_language": "es", "interpreter_needed": True,
    "cultural_considerations": "Grandmother lives with the family and joins visits.",
    "contact_preferences": {"do_not_contact": False, "methods": ["phone", "text"],
                            "best_times": "weekday evenings"},
}


#: The client the demo family's events name: the operator's `demo seed`, not a client.
DEMO_SEED = "demo-seed"


def _demo_family(clinic: Organization, provider: Organization) -> dict:
    """The clinic's demo family, a consent letting the provider see its identity only, and
    the clinic's referral of the family to the provider, sharing that.

    Run again, it keeps the family, records the consent again once the last one has ended
    (expired or revoked), and sends a new referral once the last one is no longer open and
    moving (closed, or held because its consent ended): what seeding prints keeps working.
    """
    family = db.session.scalar(sa.select(Family).where(
        Family.custodian_organization_id == clinic.id,
        Family.child_given_name == DEMO_FAMILY["child"]["given_name"],
        Family.child_family_name == DEMO_FAMILY["child"]["family_name"]))
    # The clinic's acts, done by the operator's command: the trail says which (no client of
    # the clinic's did them), so that an auditor following the clinic tells them apart.
    actor = SimpleNamespace(organization_id=clinic.id, client_id=DEMO_SEED, token_id=None)
    if family is None:
        family, _ = families.create_family(actor, data=DEMO_FAMILY)
    at = now()
    shared = policy.decide(actor_organization_id=provider.id, family=family,
                           purpose="referral", categories=["identity"], at=at)
    if shared.decision != "permit":
        _or_say_why("the demo consent was not recorded again",
                    lambda: _record_demo_consent(actor, family, clinic, provider, at))
    of_the_pair = (sa.select(Referral.id)
                   .where(Referral.family_id == family.id,
                          Referral.from_organization_id == clinic.id,
                          Referral.to_organization_id == provider.id)
                   .order_by(Referral.created_at.desc(), Referral.id.desc()).limit(1))
    referral_id = db.session.scalar(of_the_pair.where(Referral.status.in_(ACTIVE_STATUSES)))
    if referral_id is None:
        sent = _or_say_why("the demo referral was not sent again", lambda: referrals.send_referral(
            actor, data={"family_id": family.id, "to_organization_id": provider.id,
                         "reasons": ["sleep_concerns", "regulation_concerns"],
                         "urgency": "routine", "shared_categories": ["identity"],
                         "status": "requested"}))
        referral_id = sent[0]["id"] if sent else db.session.scalar(of_the_pair)
    return {"id": str(family.id), "custodian": clinic.name, "shared_with": provider.name,
            "categories_shared": ["identity"],
            "referral_id": None if referral_id is None else str(referral_id)}


def _record_demo_consent(actor, family: Family, clinic: Organization, provider: Organization,
                         at):
    grantor = next((c for c in family.caregivers if c.has_legal_authority), None)
    if grantor is None:
        raise Problem("validation-error", "no caregiver of the family has legal authority")
    return consents.record_consent(actor, family_id=family.id, data={
        "grantor": {"caregiver_id": grantor.id, "legal_authority": "parent"},
        "organization_ids": [clinic.id, provider.id],
        "purposes": ["referral", "care_coordination"], "categories": ["identity"],
        "expires_at": at + timedelta(days=180), "method": "electronic_signature",
        "signed_at": at - timedelta(minutes=1), "explained_in_language": "es",
        "interpreter_used": True, "revocation_rights_explained": True})


def _or_say_why(what: str, act):
    """`act()` in a savepoint; when the service refuses it (the demo's data was changed by
    hand: a provider no longer accepting referrals, a grantor without authority), one line
    on standard error instead, and the seeding goes on: None."""
    try:
        with db.session.begin_nested():
            return act()
    except Problem as problem:
        why = "; ".join(m for ms in (problem.errors or {}).values() for m in ms)
        click.echo(f"demo seed: {what}: {why or problem.detail}", err=True)
        return None


@demo_cli.command("seed")
def seed():
    """Create the demo organizations and one client each, and a fictional family the clinic
    shares (identity only) with Riverbend and refers to it; prints them, with fresh secrets.

    Run again, it keeps the organizations and the family and gives each client a new secret.
    """
    documents, issued, seeded = [], [], {}
    with transaction():
        for name, type_, counties, languages, accepting, capacity, scopes in DEMO_NETWORK:
            # As the directory knows it: an operator may have listed it in another case.
            organization = directory.listed_as(name, type_)
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
                result = clients.rotate_secret(client)  # a new secret: a change of the client
            db.session.flush()
            documents.append(OrganizationSchema().dump(organization))
            issued.append(client_document(result.client, result.client_secret))
            seeded[name] = organization
        family = _demo_family(seeded[DEMO_NETWORK[0][0]], seeded[DEMO_NETWORK[3][0]])
    echo_json({"organizations": documents, "clients": issued, "family": family})
    click.echo("Demo network ready; its client secrets are printed only this once.", err=True)
