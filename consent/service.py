"""Recording, reading and revoking family consents, and answering consent decisions."""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from blinker import Namespace
from flask import current_app

import audit
from consent import policy
from consent.categories import CONSENT_FIELDS, categories_in, redact
from consent.models import Consent, ConsentParty
from core.db import db
from core.errors import Problem, validation_problem
from core.pagination import Page, newest_first
from core.time import now
from core.web import concerns_family, family_concerned
from families.models import NOT_PARENTS, Caregiver, Family
from families.service import get_family, lock_family
from organizations.models import Organization

#: Sent in the revoking transaction, `consent_revoked.send(consent, family=..., at=...)`, so
#: what rested on the consent (open referrals) is put on hold in that same transaction.
consent_revoked = Namespace().signal("consent-revoked")

#: Clock skew tolerated on `signed_at` from a partner's system.
SIGNING_SKEW = timedelta(minutes=5)


def _refuse(action: str, resource_type: str, resource_id, **context) -> Problem:
    return Problem("not-found", f"No {resource_type.replace('_', ' ')} with this id is visible "
                                "to this organization",
                   audit={"action": action, "resource_type": resource_type,
                          "resource_id": resource_id, "reason": "not_found", **context})


def _family(family_id: uuid.UUID) -> Family | None:
    """The family, unheld (a look under consent holds it: `get_family`)."""
    family = db.session.get(Family, family_id)
    if family is not None:
        concerns_family(family.id)
    return family


def record_consent(actor, *, family_id: uuid.UUID, data: dict) -> tuple[dict, int]:
    """Record a consent the family gave. The recorder must be named in it and see the
    family's `identity` (who may grant it is an identity fact).

    Raises Problem 404 (family unknown or its identity not visible) or 422 naming every
    invalid field.
    """
    family = _family(family_id)
    _check_may_record(actor, family, family_id)
    # Held (only by those who may see the family) before the grantor is checked: removing the
    # caregiver, or their legal authority, goes before or after this, not in between. Asked
    # again once held, at that instant: a revocation this waited for counts.
    lock_family(family.id)
    at = now()
    sight = _check_may_record(actor, family, family_id, at)
    errors = _consent_errors(actor, family, data, at)
    # On the trail too, whatever the answer: the grantor's standing is an identity fact, told
    # by an error about it and by its absence alike, under the consent by which the
    # recorder sees the family's identity.
    if errors:
        raise validation_problem(errors, "The consent cannot be recorded", audit={
            "action": "create", "resource_type": "consent", "family_id": family.id,
            "reason": "invalid_consent", "told": sight})
    consent = Consent(
        family_id=family.id,
        grantor_caregiver_id=data["grantor"]["caregiver_id"],
        grantor_legal_authority=data["grantor"]["legal_authority"],
        purposes=data["purposes"], categories=data["categories"],
        effective_at=_effective_at(data, at), expires_at=data["expires_at"],
        method=data["method"], signed_at=data["signed_at"],
        explained_in_language=data["explained_in_language"],
        interpreter_used=data["interpreter_used"],
        revocation_rights_explained=data["revocation_rights_explained"],
        recorded_by_organization_id=actor.organization_id, recorded_at=at,
        party_count=len(data["organization_ids"]),
        parties=[ConsentParty(organization_id=org_id, family_id=family.id, position=n)
                 for n, org_id in enumerate(data["organization_ids"])],
    )
    db.session.add(consent)
    db.session.flush()
    audit.record(action="create", outcome="permit", reason="recorded", resource_type="consent",
                 resource_id=consent.id, family_id=family.id, consent_ids=[consent.id],
                 actor=actor)
    audit.record_told(sight, family_id=family.id, actor=actor)
    # As any later read shows it to the recorder: the author sees what it wrote.
    return consent_document(consent, _view(actor, consent, family)), consent.version


def _check_may_record(actor, family: Family | None, family_id: uuid.UUID,
                      at=None) -> policy.Decision:
    """The decision by which the actor sees the family's `identity` (who may grant a consent
    is an identity fact). Raises Problem 404 unless the family exists and it does."""
    sight = None if family is None else _identity_sight(actor, family, at or now())
    if sight is None:
        raise _refuse("create", "family", family_id,
                      family_id=family_concerned())
    return sight


def _identity_sight(actor, family: Family, at: datetime) -> policy.Decision | None:
    """The decision by which the actor now sees the family's `identity`, if it does."""
    return policy.sight(actor_organization_id=actor.organization_id, family=family, at=at,
                        categories=["identity"])


def _caregiver(family: Family, caregiver_id: uuid.UUID) -> Caregiver | None:
    """The family's caregiver with this id as it is now (the family locked), or None."""
    return db.session.scalars(
        sa.select(Caregiver).where(Caregiver.id == caregiver_id, Caregiver.family_id == family.id)
        .execution_options(populate_existing=True)).one_or_none()


def _consent_errors(actor, family: Family, data: dict, at: datetime) -> dict:
    errors: dict[str, list[str]] = {}
    caregiver = _caregiver(family, data["grantor"]["caregiver_id"])
    if caregiver is None:
        errors["grantor.caregiver_id"] = ["Not a caregiver of this family"]
    elif not caregiver.has_legal_authority:
        errors["grantor.caregiver_id"] = [
            "This caregiver has no legal authority to consent for the child"]
    elif (data["grantor"]["legal_authority"] == "parent"
          and caregiver.relationship in NOT_PARENTS):
        # A foster parent, grandparent or guardian with authority holds it as a guardian or
        # by a court, never as the child's parent (DOMAIN.md: who may grant).
        errors["grantor.legal_authority"] = [
            f"A caregiver recorded as {caregiver.relationship} does not hold legal authority "
            "as a parent: legal_guardian or court_appointed"]

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
    effective_at = _effective_at(data, at)
    if signed_at > at + SIGNING_SKEW:
        errors["signed_at"] = ["Cannot be in the future"]
    if effective_at < signed_at:
        errors["effective_at"] = ["A consent cannot take effect before it was signed"]
    longest = timedelta(days=current_app.config["CONSENT_MAX_DAYS"])
    if expires_at <= effective_at:
        errors["expires_at"] = ["Must be after effective_at"]
    elif expires_at <= at:
        # Recorded, it would permit nothing: most likely a mistyped year, found only when a
        # referral is refused for want of consent.
        errors["expires_at"] = ["Already past: a consent that has ended permits nothing"]
    elif expires_at - signed_at > longest:
        # From the signature, which is never after the start: a form signed years ago, or a
        # start mistyped years ahead, must not let one signature authorize sharing longer.
        errors["expires_at"] = [f"At most {longest.days} days after signed_at"]
    return errors


def _effective_at(data: dict, at):
    """When the consent takes effect: as given, else now, or its signing time when a partner's
    clock runs ahead of ours (by up to SIGNING_SKEW): it cannot take effect before it was signed."""
    return data.get("effective_at") or max(at, data["signed_at"])


_RECORD_FIELDS = ("id", "family_id", "grantor", "organization_ids", "purposes", "categories",
                  "effective_at", "expires_at", "method", "signed_at", "explained_in_language",
                  "interpreter_used", "revocation_rights_explained",
                  "recorded_by_organization_id", "recorded_at", "status", "revoked_at",
                  "revocation_reason", "revocation_requested_by")


def consent_document(consent: Consent, view: policy.ConsentView) -> dict:
    """The consent record as the viewer may see it; `redacted` names what was withheld."""
    fields = {field: getattr(consent, field) for field in _RECORD_FIELDS if field != "status"}
    # At the instant the view was decided: a status read a moment later could say `expired`
    # beside facts shown under that very consent.
    fields["status"] = consent.status_at(view.at)
    document = redact(fields, CONSENT_FIELDS, view.permitted)
    if not view.shows_revocation_reason and document["revocation_reason"] is not None:
        del document["revocation_reason"]  # free text of the custodian's and the revoker's
    document["redacted"] = sorted(categories_in(CONSENT_FIELDS) - view.permitted)
    return document


def _record_view(actor, consent: Consent, family: Family, view) -> None:
    """Audit a look at a consent record: a disclosure for each purpose the family facts it
    showed were permitted for, or one look that showed none."""
    for disclosed in view.disclosures:
        audit.record(action="read", outcome="permit", reason=disclosed.reason,
                     resource_type="consent", resource_id=consent.id, family_id=family.id,
                     actor=actor, purpose=disclosed.purpose, categories=disclosed.permitted,
                     consent_ids=disclosed.consent_ids)
    if not view.disclosures:
        audit.record(action="read", outcome="permit", reason=view.reason,
                     resource_type="consent", resource_id=consent.id, family_id=family.id,
                     actor=actor, consent_ids=[consent.id])


def _view(actor, consent: Consent, family: Family) -> policy.ConsentView | None:
    return policy.view_of_consent(_viewer(actor, family), consent)


def _viewer(actor, family: Family) -> policy.Viewer:
    return policy.Viewer(actor_organization_id=actor.organization_id, family=family, at=now())


def _visible_consent(actor, consent_id: uuid.UUID, action: str):
    consent = db.session.get(Consent, consent_id)
    # A revocation holds the family next (see revoke_consent); a look shares it, then reads
    # the consent again: one revoked while it waited is shown revoked.
    family = None
    if consent is not None:
        family = (get_family(consent.family_id, share=True, linked_to=actor.organization_id)
                  if action == "read" else _family(consent.family_id))
    if family is not None and action == "read":
        db.session.refresh(consent)
    view = _view(actor, consent, family) if family is not None else None
    if view is None:
        raise _refuse(action, "consent", consent_id,
                      family_id=consent.family_id if consent else None)
    return consent, family, view


def get_consent(actor, *, consent_id: uuid.UUID) -> tuple[dict, int]:
    """A consent as the caller may see it, with its version; 404 for organizations it does
    not name (other than the family's custodian)."""
    consent, family, view = _visible_consent(actor, consent_id, "read")
    _record_view(actor, consent, family, view)
    return consent_document(consent, view), consent.version


def list_consents(actor, *, family_id: uuid.UUID, limit: int,
                  cursor: str | None = None) -> Page:
    """The family's consents naming the caller (all of them for the custodian), newest first,
    each as the caller may see it.

    Raises Problem 404 when the family does not exist or no consent links it to the caller.
    """
    # Held only by, and found only for, an organization linked to it (the custodian, or one a
    # consent of the family ever named): anyone else learns nothing of it.
    family = get_family(family_id, share=True, linked_to=actor.organization_id)
    if family is None:
        raise _refuse("search", "family", family_id, family_id=family_concerned())
    stmt = sa.select(Consent).where(Consent.family_id == family.id,
                                    policy.consents_known_clause(actor.organization_id, family))
    page = newest_first(stmt, kind="consents", at=Consent.recorded_at, id=Consent.id,
                        cursor=cursor, limit=limit)
    viewer = _viewer(actor, family)
    views = [policy.view_of_consent(viewer, c) for c in page.items]
    # One event for each purpose the page's family facts were shown for, or one that showed
    # none: each disclosure in the accounting names its purpose.
    by_purpose = policy.by_purpose(d for view in views for d in view.disclosures)
    for purpose, disclosed in by_purpose.items():
        audit.record(action="search", outcome="permit", reason="consent",
                     resource_type="consent", family_id=family.id, actor=actor,
                     purpose=purpose, categories=disclosed.permitted,
                     consent_ids=disclosed.consent_ids)
    if not by_purpose:
        audit.record(action="search", outcome="permit",
                     reason=views[0].reason if views else "party",
                     resource_type="consent", family_id=family.id, actor=actor,
                     consent_ids=[c.id for c in page.items])
    page.items = [consent_document(c, v) for c, v in zip(page.items, views, strict=True)]
    return page


def revoke_consent(actor, *, consent_id: uuid.UUID, data: dict) -> tuple[dict, int]:
    """Revoke a consent, effective at once for everything not yet disclosed. Revoking a revoked
    consent changes nothing. Raises Problem 404 (not visible) or 422 (caregiver not of the
    family)."""
    consent, family, view = _visible_consent(actor, consent_id, "revoke")
    # A send or a resumption relying on this consent finishes before, or waits until after;
    # so does a change of the family's caregivers, which the check below reads as they are now.
    lock_family(family.id)
    caregiver_id = data.get("caregiver_id")
    problem, told = _check_revocation_caregiver(actor, family, caregiver_id,
                                                data["requested_by"])
    # Told by an error about the caregiver named, and by its absence alike.
    if problem:
        raise validation_problem({"caregiver_id": [problem]}, "The revocation cannot be recorded",
                                 audit={"action": "revoke", "resource_type": "consent",
                                        "resource_id": consent.id, "family_id": family.id,
                                        "consent_ids": [consent.id],
                                        "reason": "invalid_revocation", "told": told})
    # Told by the check, at its instant: under the consents in force then, this one among
    # them, and on the trail before the revocation that ends it (a review).
    audit.record_told(told, family_id=family.id, actor=actor)
    db.session.refresh(consent)
    reason = "already_revoked"
    if consent.revoked_at is None:
        consent.revoked_at = now()
        consent.revocation_reason = data["reason"]
        consent.revocation_requested_by = data["requested_by"]
        consent.revocation_caregiver_id = caregiver_id
        consent.revoked_by_organization_id = actor.organization_id
        db.session.flush()
        consent_revoked.send(consent, family=family, at=consent.revoked_at)
        reason = f"requested_by_{data['requested_by']}"
    audit.record(action="revoke", outcome="permit", reason=reason, resource_type="consent",
                 resource_id=consent.id, family_id=family.id, consent_ids=[consent.id],
                 actor=actor)
    # The answer is what the caller may see once the revocation holds: the family facts in the
    # record pass only under the consents still in force, a disclosure of its own.
    view = _view(actor, consent, family)
    if view.discloses:
        _record_view(actor, consent, family, view)
    return consent_document(consent, view), consent.version


def _check_revocation_caregiver(actor, family: Family, caregiver_id, requested_by: str
                                ) -> tuple[str | None, policy.Decision | None]:
    """Why the caregiver named on a revocation cannot be recorded as asking for it, or None;
    and the decision under which the check tells the caller an identity fact, if one ran.
    Who asks as the family holds legal authority for the child, as who grants does; anyone
    else's wish is recorded as the organization's request (`requested_by: organization`).
    Only an organization that may see the family's `identity` names a caregiver: checking
    one for anyone else would tell it who belongs to the family and who holds authority."""
    if caregiver_id is None:
        return None, None
    sight = _identity_sight(actor, family, now())
    if sight is None:
        return ("Only an organization that may see the family's identity names the caregiver "
                "who asked: leave caregiver_id out (the request is recorded as the "
                "caregiver's, unnamed)"), None
    caregiver = _caregiver(family, caregiver_id)
    if caregiver is None:
        return "Not a caregiver of this family", sight
    if requested_by == "caregiver" and not caregiver.has_legal_authority:
        return ("This caregiver has no legal authority for the child: record the revocation "
                "as requested by the organization"), sight
    return None, sight


def decide_for(actor, *, family_id: uuid.UUID, purpose: str, categories: list[str]) -> dict:
    """The engine's answer for the caller only, recorded as `decide`.

    Raises Problem 404 when the family does not exist or no consent, past or present, links
    it to the caller.
    """
    family = get_family(family_id, share=True, linked_to=actor.organization_id)
    if family is None:  # unknown, or not linked to the caller (see list_consents)
        raise _refuse("decide", "family", family_id, family_id=family_concerned(),
                      purpose=purpose, categories=sorted(categories))
    decision = policy.decide(actor_organization_id=actor.organization_id, family=family,
                             purpose=purpose, categories=categories, at=now())
    audit.record(action="decide", outcome=decision.decision, reason=decision.reason,
                 resource_type="family", resource_id=family.id, family_id=family.id,
                 purpose=purpose, categories=decision.asked, consent_ids=decision.consent_ids,
                 actor=actor)
    return {"decision": decision.decision, "permitted_categories": sorted(decision.permitted),
            "consent_ids": list(decision.consent_ids), "reason": decision.reason}
