"""Recording, reading and revoking family consents, and answering consent decisions."""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

import audit
from consent import policy
from consent.models import Consent, ConsentParty
from core.db import db
from core.errors import Problem, validation_problem
from core.pagination import Page, keyset_page
from core.time import now
from families.models import Caregiver, Family
from organizations.models import Organization

#: Clock skew tolerated on `signed_at` from a partner's system.
SIGNING_SKEW = timedelta(minutes=5)


def _refuse(action: str, resource_type: str, resource_id, **context) -> Problem:
    return Problem("not-found", f"No {resource_type.replace('_', ' ')} with this id is visible "
                                "to this organization",
                   audit={"action": action, "resource_type": resource_type,
                          "resource_id": resource_id, "reason": "not_found", **context})


def _family(family_id: uuid.UUID) -> Family | None:
    return db.session.get(Family, family_id)


def record_consent(actor, *, family_id: uuid.UUID, data: dict) -> Consent:
    """Record a consent the family gave. The recorder must be named in it and see the family.

    Raises Problem 404 (family unknown or not visible) or 422 naming every invalid field.
    """
    at = now()
    family = _family(family_id)
    if family is None or not policy.may_see_family(
            actor_organization_id=actor.organization_id, family=family, at=at):
        raise _refuse("create", "family", family_id,
                      family_id=family.id if family else None)
    errors = _consent_errors(actor, family, data, at)
    if errors:
        raise validation_problem(errors, "The consent cannot be recorded")
    consent = Consent(
        family_id=family.id,
        grantor_caregiver_id=data["grantor"]["caregiver_id"],
        grantor_legal_authority=data["grantor"]["legal_authority"],
        purposes=data["purposes"], categories=data["categories"],
        effective_at=data.get("effective_at") or at, expires_at=data["expires_at"],
        method=data["method"], signed_at=data["signed_at"],
        explained_in_language=data["explained_in_language"],
        interpreter_used=data["interpreter_used"],
        revocation_rights_explained=data["revocation_rights_explained"],
        recorded_by_organization_id=actor.organization_id, recorded_at=at,
        parties=[ConsentParty(organization_id=org_id, family_id=family.id, position=n)
                 for n, org_id in enumerate(data["organization_ids"])],
    )
    db.session.add(consent)
    db.session.flush()
    audit.record(action="create", outcome="permit", reason="recorded", resource_type="consent",
                 resource_id=consent.id, family_id=family.id, consent_ids=[consent.id],
                 actor=actor)
    return consent


def _consent_errors(actor, family: Family, data: dict, at: datetime) -> dict:
    errors: dict[str, list[str]] = {}
    caregiver = db.session.get(Caregiver, data["grantor"]["caregiver_id"])
    if caregiver is None or caregiver.family_id != family.id:
        errors["grantor.caregiver_id"] = ["Not a caregiver of this family"]
    elif not caregiver.has_legal_authority:
        errors["grantor.caregiver_id"] = [
            "This caregiver has no legal authority to consent for the child"]

    parties = data["organization_ids"]
    party_errors = []
    if actor.organization_id not in parties:
        party_errors.append("Must name the recording organization")
    known = set(db.session.scalars(sa.select(Organization.id).where(Organization.id.in_(parties))))
    unknown = [str(p) for p in parties if p not in known]
    if unknown:
        party_errors.append(f"Unknown organizations: {', '.join(unknown)}")
    if party_errors:
        errors["organization_ids"] = party_errors

    signed_at, expires_at = data["signed_at"], data["expires_at"]
    effective_at = data.get("effective_at") or at
    if signed_at > at + SIGNING_SKEW:
        errors["signed_at"] = ["Cannot be in the future"]
    if effective_at < signed_at:
        errors["effective_at"] = ["A consent cannot take effect before it was signed"]
    longest = timedelta(days=current_app.config["CONSENT_MAX_DAYS"])
    if expires_at <= effective_at:
        errors["expires_at"] = ["Must be after effective_at"]
    elif expires_at - effective_at > longest:
        errors["expires_at"] = [f"At most {longest.days} days after effective_at"]
    return errors


def _visible_consent(actor, consent_id: uuid.UUID, action: str) -> tuple[Consent, Family]:
    consent = db.session.get(Consent, consent_id)
    family = _family(consent.family_id) if consent else None
    if consent is None or (actor.organization_id not in consent.organization_ids
                           and actor.organization_id != family.custodian_organization_id):
        raise _refuse(action, "consent", consent_id,
                      family_id=consent.family_id if consent else None)
    return consent, family


def get_consent(actor, *, consent_id: uuid.UUID) -> Consent:
    """A consent, for its named organizations and the family's custodian; 404 otherwise."""
    consent, family = _visible_consent(actor, consent_id, "read")
    audit.record(action="read", outcome="permit", reason="party", resource_type="consent",
                 resource_id=consent.id, family_id=family.id, consent_ids=[consent.id],
                 actor=actor)
    return consent


def list_consents(actor, *, family_id: uuid.UUID, limit: int,
                  cursor: str | None = None) -> Page:
    """The family's consents naming the caller (all of them for the custodian), newest first.

    Raises Problem 404 when the family does not exist or no consent links it to the caller.
    """
    family = _family(family_id)
    custodian = family is not None and family.custodian_organization_id == actor.organization_id
    if family is None or not (custodian or policy.is_party_to_any(
            family_id=family.id, organization_id=actor.organization_id)):
        raise _refuse("search", "family", family_id, family_id=family.id if family else None)
    stmt = sa.select(Consent).where(Consent.family_id == family.id)
    if not custodian:
        stmt = stmt.where(Consent.id.in_(sa.select(ConsentParty.consent_id).where(
            ConsentParty.organization_id == actor.organization_id,
            ConsentParty.family_id == family.id)))
    page = keyset_page(
        stmt, kind="consents", order=[Consent.recorded_at, Consent.id], cursor=cursor,
        limit=limit, descending=True,
        encode=lambda c: [c.recorded_at.isoformat(), str(c.id)],
        decode=lambda v: [datetime.fromisoformat(v[0]), uuid.UUID(v[1])])
    audit.record(action="search", outcome="permit", reason="party", resource_type="consent",
                 family_id=family.id, consent_ids=[c.id for c in page.items], actor=actor)
    return page


def revoke_consent(actor, *, consent_id: uuid.UUID, data: dict) -> Consent:
    """Revoke a consent, effective at once for everything not yet disclosed. Revoking a revoked
    consent changes nothing. Raises Problem 404 (not visible) or 422 (caregiver not of the
    family)."""
    consent, family = _visible_consent(actor, consent_id, "revoke")
    caregiver_id = data.get("caregiver_id")
    if caregiver_id is not None:
        caregiver = db.session.get(Caregiver, caregiver_id)
        if caregiver is None or caregiver.family_id != family.id:
            raise validation_problem({"caregiver_id": ["Not a caregiver of this family"]})
    if consent.revoked_at is not None:
        audit.record(action="revoke", outcome="permit", reason="already_revoked",
                     resource_type="consent", resource_id=consent.id, family_id=family.id,
                     consent_ids=[consent.id], actor=actor)
        return consent
    consent.revoked_at = now()
    consent.revocation_reason = data["reason"]
    consent.revocation_requested_by = data["requested_by"]
    consent.revocation_caregiver_id = caregiver_id
    consent.revoked_by_organization_id = actor.organization_id
    db.session.flush()
    audit.record(action="revoke", outcome="permit", reason=f"requested_by_{data['requested_by']}",
                 resource_type="consent", resource_id=consent.id, family_id=family.id,
                 consent_ids=[consent.id], actor=actor)
    return consent


def decide_for(actor, *, family_id: uuid.UUID, purpose: str, categories: list[str]) -> dict:
    """The engine's answer for the caller only, recorded as `decide`.

    Raises Problem 404 when the family does not exist or no consent, past or present, links
    it to the caller.
    """
    family = _family(family_id)
    if family is None or (family.custodian_organization_id != actor.organization_id
                          and not policy.is_party_to_any(family_id=family.id,
                                                         organization_id=actor.organization_id)):
        raise _refuse("decide", "family", family_id, family_id=family.id if family else None,
                      purpose=purpose, categories=sorted(categories))
    decision = policy.decide(actor_organization_id=actor.organization_id, family=family,
                             purpose=purpose, categories=categories, at=now())
    audit.record(action="decide", outcome=decision.decision, reason=decision.reason,
                 resource_type="family", resource_id=family.id, family_id=family.id,
                 purpose=purpose, categories=decision.asked, consent_ids=decision.consent_ids,
                 actor=actor)
    return {"decision": decision.decision, "permitted_categories": sorted(decision.permitted),
            "consent_ids": list(decision.consent_ids), "reason": decision.reason}
