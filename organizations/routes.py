"""The directory's HTTP surface."""

import uuid

from flask import Blueprint, request

from auth.protect import current_actor, require_scope
from core.concurrency import Preconditions, etag_for
from core.docs import IF_MATCH_OPTIONAL, IF_NONE_MATCH, operation
from core.web import load_body, load_query, respond
from organizations import service
from organizations.schemas import (
    OrganizationListQuery,
    OrganizationPageSchema,
    OrganizationSchema,
    OrganizationUpdateSchema,
)

bp = Blueprint("organizations", __name__, url_prefix="/api/v1/organizations")
TAGS = ["Directory"]


@bp.get("")
@require_scope("directory:read")
@operation(summary="List the directory", tags=TAGS, query=OrganizationListQuery,
           responses={200: OrganizationPageSchema})
def list_organizations():
    """Organizations in the network, by name, with filters and keyset pagination."""
    args = load_query(OrganizationListQuery)
    page = service.list_organizations(**args)
    return respond(OrganizationPageSchema, page)


@bp.get("/<uuid:organization_id>")
@require_scope("directory:read")
@operation(summary="Read one directory entry", tags=TAGS, errors=(404,),
           responses={200: OrganizationSchema}, headers={200: {"ETag": "Version of the entry."}})
def get_organization(organization_id: uuid.UUID):
    """One organization's directory entry."""
    organization = service.get_organization(organization_id)
    return respond(OrganizationSchema, organization,
                   headers={"ETag": etag_for(organization.version)})


@bp.patch("/<uuid:organization_id>")
@require_scope("directory:write")
@operation(summary="Update your own listing", tags=TAGS, body=OrganizationUpdateSchema,
           errors=(403, 404, 412), responses={200: OrganizationSchema},
           parameters=[IF_MATCH_OPTIONAL, IF_NONE_MATCH],
           headers={200: {"ETag": "Version of the entry after the change."}})
def update_organization(organization_id: uuid.UUID):
    """Capacity, whether referrals are accepted, languages and counties of the caller's own
    organization. `If-Match` is optional; a stale one is 412. Another organization's listing
    is 403."""
    changes = load_body(OrganizationUpdateSchema)
    organization = service.update_listing(
        current_actor(), organization_id=organization_id, changes=changes,
        preconditions=Preconditions.of(request.headers),
    )
    return respond(OrganizationSchema, organization,
                   headers={"ETag": etag_for(organization.version)})
