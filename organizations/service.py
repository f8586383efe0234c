"""The directory's rules: listing, reading, and each organization keeping its own entry."""

import uuid

import sqlalchemy as sa

import audit
from core.concurrency import Preconditions, check_preconditions
from core.db import db
from core.errors import Problem
from core.pagination import Page, keyset_page
from core.sqltypes import json_array_contains_ci, json_array_holds_tag, like_pattern
from core.text import name_key, search_key
from core.time import now
from organizations.models import Organization


def list_organizations(*, limit: int, cursor: str | None = None, type: str | None = None,
                       county: str | None = None, language: str | None = None,
                       accepting_referrals: bool | None = None, q: str | None = None) -> Page:
    """One page of the directory, by name, narrowed by the given filters."""
    stmt = sa.select(Organization)
    if type is not None:
        stmt = stmt.where(Organization.type == type)
    if accepting_referrals is not None:
        stmt = stmt.where(Organization.accepting_referrals == accepting_referrals)
    if county is not None:
        stmt = stmt.where(json_array_contains_ci(Organization.counties, county))
    if language is not None:
        stmt = stmt.where(json_array_holds_tag(Organization.languages, language))
    if q is not None:
        # Keyed by Python as the names are: the two databases' own lower() fold İ and a final
        # Σ each their own way, and know nothing of Unicode normalization.
        stmt = stmt.where(Organization.search_key.like(like_pattern(search_key(q)),
                                                       escape="\\"))
    return keyset_page(
        stmt,
        kind="organizations",
        order=[Organization.name_key, Organization.id],
        cursor=cursor,
        limit=limit,
        encode=lambda org: [org.name_key, str(org.id)],
        decode=lambda values: [str(values[0]), uuid.UUID(values[1])],
    )


def get_organization(organization_id: uuid.UUID, *, hold: bool = False) -> Organization:
    """The organization with this id; `hold`: its row held until the transaction ends, and
    read as it is now. Raises Problem 404 when there is none."""
    if hold:
        organization = db.session.scalars(
            sa.select(Organization).where(Organization.id == organization_id)
            .with_for_update().execution_options(populate_existing=True)).one_or_none()
    else:
        organization = db.session.get(Organization, organization_id)
    if organization is None:
        raise Problem("not-found", "No organization has this id")
    return organization


def listed_as(name: str, type: str) -> Organization | None:
    """The organization the directory lists under this name (by its key: case and Unicode
    form aside) and type: there is one at most (migration 0015)."""
    return db.session.scalar(sa.select(Organization).where(
        Organization.name_key == name_key(name), Organization.type == type))


def create_organization(*, name: str, type: str, counties=(), languages=(),
                        accepting_referrals: bool = False) -> Organization:
    """Add an organization to the directory (an operator's command, on the trail)."""
    organization = Organization(
        name=name, type=type, counties=list(counties), languages=list(languages),
        accepting_referrals=accepting_referrals,
    )
    db.session.add(organization)
    db.session.flush()
    audit.record_operator("create", "organization", organization.id)
    return organization


def update_listing(actor, *, organization_id: uuid.UUID, changes: dict,
                   preconditions: Preconditions) -> Organization:
    """Change the caller's own listing.

    Raises Problem 404 (no such organization), 403 (another organization's listing),
    412 (stale If-Match).
    """
    if organization_id != actor.organization_id:
        get_organization(organization_id)  # 404 when there is none
        raise Problem("forbidden", "An organization changes only its own listing")
    # Held, and read as it is now: two changes at once take turns, each judged (If-Match
    # included) on what the one before left, where the second's UPDATE found the version
    # moved under it and answered 412 to a request that set no precondition.
    organization = get_organization(organization_id, hold=True)
    check_preconditions(preconditions, organization.version, required=False)
    for field in ("accepting_referrals", "counties", "languages"):
        if field in changes and changes[field] != getattr(organization, field):
            setattr(organization, field, changes[field])
    if "capacity" in changes:
        capacity = changes["capacity"]
        waitlist = None
        if capacity["status"] == "waitlist":
            waitlist = capacity.get("waitlist") or "unknown"
        organization.capacity_status = capacity["status"]
        organization.capacity_waitlist = waitlist
        organization.capacity_updated_at = now()
    if db.session.is_modified(organization):
        organization.updated_at = now()
        db.session.flush()
    audit.record(action="update", outcome="permit", reason="own_listing",
                 resource_type="organization", resource_id=organization.id, actor=actor)
    return organization
