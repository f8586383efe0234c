"""Consents and consent decisions over HTTP."""

import uuid

from flask import Blueprint

from audit.boundary import audited_as
from auth.protect import current_actor, require_scope
from consent import service
from consent.schemas import (
    ConsentInputSchema,
    ConsentListQuery,
    ConsentPageSchema,
    ConsentSchema,
    DecisionInputSchema,
    DecisionSchema,
    RevocationInputSchema,
)
from core.concurrency import etag_for
from core.docs import operation
from core.idempotency import idempotent
from core.web import load_body, load_query, respond

bp = Blueprint("consent", __name__, url_prefix="/api/v1")
TAGS = ["Consent"]


@bp.post("/families/<uuid:family_id>/consents")
@require_scope("consent:write")
@idempotent
@operation(summary="Record a family's consent", tags=TAGS, body=ConsentInputSchema,
           responses={201: ConsentSchema})
def record_consent(family_id: uuid.UUID):
    """Recorded by an organization named in it that may see the family's `identity` (others
    get 404: who may grant a consent is an identity fact). The grantor is a caregiver of this
    family with legal authority; at least two organizations; an end date at most
    `CONSENT_MAX_DAYS` after it was signed (`signed_at`); the right to revoke explained.
    Never edited afterwards: a change is a revocation and a new consent."""
    data = load_body(ConsentInputSchema)
    document, version = service.record_consent(current_actor(), family_id=family_id, data=data)
    return respond(ConsentSchema, document, status=201,
                   headers={"Location": f"/api/v1/consents/{document['id']}",
                            "ETag": etag_for(version)})


@bp.get("/families/<uuid:family_id>/consents")
@require_scope("consent:read")
@audited_as("search")
@operation(summary="List a family's consents", tags=TAGS, query=ConsentListQuery,
           responses={200: ConsentPageSchema})
def list_consents(family_id: uuid.UUID):
    """The consents naming the caller (the custodian sees all), newest first."""
    args = load_query(ConsentListQuery)
    page = service.list_consents(current_actor(), family_id=family_id, **args)
    return respond(ConsentPageSchema, page)


@bp.get("/consents/<uuid:consent_id>")
@require_scope("consent:read")
@operation(summary="Read a consent", tags=TAGS, responses={200: ConsentSchema},
           headers={200: {"ETag": '`"v1"` as recorded, `"v2"` once revoked.'}})
def get_consent(consent_id: uuid.UUID):
    """For the organizations it names and the family's custodian; 404 for anyone else. A named
    organization sees the language the consent was explained in and the interpreter only while
    a consent in force lets it see the family's `contact` information (else `redacted` names
    it), unless it recorded the consent (it wrote them: its recorder always sees them), and
    the revocation reason only if it recorded the revocation."""
    document, version = service.get_consent(current_actor(), consent_id=consent_id)
    return respond(ConsentSchema, document, headers={"ETag": etag_for(version)})


@bp.post("/consents/<uuid:consent_id>/revoke")
@require_scope("consent:write")
@audited_as("revoke")
@operation(summary="Revoke a consent", tags=TAGS, body=RevocationInputSchema,
           responses={200: ConsentSchema})
def revoke_consent(consent_id: uuid.UUID):
    """Effective at once for everything not yet disclosed: in the same transaction, every
    open referral the consents still in force no longer cover goes `on_hold`
    (`consent_ended`), and one they still cover rests on them from then on (its
    `consent_ids`). Revoking a revoked consent answers 200 with the consent unchanged; a
    revoked consent is never reactivated."""
    data = load_body(RevocationInputSchema)
    document, version = service.revoke_consent(current_actor(), consent_id=consent_id, data=data)
    return respond(ConsentSchema, document, headers={"ETag": etag_for(version)})


@bp.post("/consent-decisions")
@require_scope("consent:read")
@audited_as("decide")
@operation(summary="Ask the consent engine", tags=TAGS, body=DecisionInputSchema,
           responses={200: DecisionSchema})
def decide():
    """May the calling organization see these categories of the family's information for this
    purpose, now? `permit` only when every asked category is permitted. 404 when the family
    does not exist or no consent, past or present, links it to the caller."""
    data = load_body(DecisionInputSchema)
    return respond(DecisionSchema, service.decide_for(current_actor(), **data))
