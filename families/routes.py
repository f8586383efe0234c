"""Family records over HTTP."""

import uuid

from flask import Blueprint, request

from audit.boundary import audited_as
from audit.schemas import DisclosurePageSchema, DisclosureQuery
from auth.protect import current_actor, require_scope
from core.concurrency import Preconditions, etag_for
from core.docs import IF_MATCH_OPTIONAL, IF_NONE_MATCH, operation
from core.idempotency import idempotent
from core.web import load_body, load_query, respond
from families import service
from families.schemas import (
    FamilyCreateSchema,
    FamilyListQuery,
    FamilyPageSchema,
    FamilyReadQuery,
    FamilySchema,
    FamilyUpdateSchema,
    FamilyWithWarningsSchema,
)

bp = Blueprint("families", __name__, url_prefix="/api/v1/families")
TAGS = ["Families"]
_ETAG = {"ETag": "Version of the family record."}


@bp.post("")
@require_scope("families:write")
@idempotent
@operation(summary="Record a family", tags=TAGS, body=FamilyCreateSchema,
           responses={201: FamilyWithWarningsSchema}, headers={201: _ETAG})
def create_family():
    """The calling organization becomes the family's custodian. `warnings` names likely
    duplicates among the caller's own families (same child name and birth date). Text is
    kept in Unicode NFC; one-line fields (names, county, `best_times`) are stripped of
    surrounding spaces and take no line break."""
    data = load_body(FamilyCreateSchema)
    family, warnings = service.create_family(current_actor(), data=data)
    document = service.family_document(family, custodian=True) | {"warnings": warnings}
    return respond(FamilyWithWarningsSchema, document, status=201,
                   headers={"ETag": etag_for(family.version),
                            "Location": f"/api/v1/families/{family.id}"})


@bp.get("")
@require_scope("families:read")
@audited_as("search")
@operation(summary="List your own families", tags=TAGS, query=FamilyListQuery,
           responses={200: FamilyPageSchema})
def list_families():
    """The families the calling organization holds as custodian, most recently changed first
    (a record's creation is its first change). A walk is not a snapshot: a family changed
    meanwhile moves to the front, ahead of the cursor; to keep a copy in step, ask again with
    `updated_since` set to a minute before the last walk began: a change is dated when its
    request began and shows once that request commits, up to 30 s later (a request that would
    commit later is refused 503), so a walk can pass it by unseen; what comes again is known
    by its `id` and `updated_at`."""
    args = load_query(FamilyListQuery)
    return respond(FamilyPageSchema, service.list_families(current_actor(), **args))


@bp.get("/<uuid:family_id>")
@require_scope("families:read")
@operation(summary="Read a family record", tags=TAGS, query=FamilyReadQuery,
           responses={200: FamilySchema}, headers={200: _ETAG})
def get_family(family_id: uuid.UUID):
    """The custodian sees the whole record. Another organization sees exactly the categories
    a consent in force permits it for `purpose`; `redacted` names the withheld ones. 404 when
    nothing is permitted, the same as for an id that does not exist."""
    args = load_query(FamilyReadQuery)
    document, version = service.read_family(current_actor(), family_id=family_id, **args)
    return respond(FamilySchema, document, headers={"ETag": etag_for(version)})


@bp.get("/<uuid:family_id>/disclosures")
@require_scope("families:read", "audit:read")
@operation(summary="Accounting of disclosures", tags=TAGS, query=DisclosureQuery,
           responses={200: DisclosurePageSchema})
def list_disclosures(family_id: uuid.UUID):
    """Every access to the family's information by an organization other than its custodian
    that a consent permitted: who, when, which categories, what purpose, which consents;
    newest first. For the custodian (`families:read`) and for auditors (`audit:read`)."""
    args = load_query(DisclosureQuery)
    page = service.list_disclosures(current_actor(), family_id=family_id, **args)
    return respond(DisclosurePageSchema, page)


@bp.patch("/<uuid:family_id>")
@require_scope("families:write")
@operation(summary="Change a family record", tags=TAGS, body=FamilyUpdateSchema,
           errors=(403, 409, 412), responses={200: FamilyWithWarningsSchema},
           headers={200: _ETAG}, parameters=[IF_MATCH_OPTIONAL, IF_NONE_MATCH])
def update_family(family_id: uuid.UUID):
    """Custodian only (another organization that may see the family gets 403, any other 404).
    Only what is sent changes, down into `child`, `contact_preferences` and each caregiver:
    a member left out stays as it is, `null` erases a nullable one, and nothing takes a
    default. `caregivers`, when given, is the whole list: items with an `id` change that
    caregiver, items without are added (as on create), caregivers left out are removed (409
    if they granted or revoked a consent). When `child` is sent, `warnings` names the
    caller's other families the record now likely duplicates, as on create; else it is
    empty."""
    changes = load_body(FamilyUpdateSchema)
    family, warnings = service.update_family(current_actor(), family_id=family_id,
                                             changes=changes,
                                             preconditions=Preconditions.of(request.headers))
    document = service.family_document(family, custodian=True) | {"warnings": warnings}
    return respond(FamilyWithWarningsSchema, document, headers={"ETag": etag_for(family.version)})
