"""Family records: created and changed by their custodian, seen by others only under consent."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm

import audit
from audit import service as audit_service
from consent import policy
from consent.categories import FAMILY_CATEGORIES, FAMILY_FIELDS, redact
from consent.models import Consent
from core.concurrency import Preconditions, check_preconditions
from core.db import db
from core.errors import Problem, validation_problem
from core.pagination import Page, newest_first
from core.time import now
from core.web import concerns_family
from families.models import Caregiver, Family

_CAREGIVER_FIELDS = ("given_name", "family_name", "relationship", "relationship_description",
                     "has_legal_authority", "phone", "email")
#: What a new caregiver is when a member is left out (on create, and added by a PATCH).
_NEW_CAREGIVER = {"relationship_description": None, "has_legal_authority": False,
                  "phone": None, "email": None}
#: The columns of `child` and `contact_preferences`, member by member.
_CHILD_COLUMNS = {"given_name": "child_given_name", "family_name": "child_family_name",
                  "birth_date": "child_birth_date", "county": "child_county"}
_CONTACT_COLUMNS = {"do_not_contact": "do_not_contact", "methods": "contact_methods",
                    "best_times": "contact_best_times"}
_FAMILY_FIELDS = ("preferred_language", "interpreter_needed", "cultural_considerations")


def _not_found(resource_id, **audit_context) -> Problem:
    return Problem("not-found", "No family with this id is visible to this organization",
                   audit={"action": "read", "resource_type": "family",
                          "resource_id": resource_id, **audit_context})


# Built once: every read of a family, and of a referral's, starts here.
_FAMILY = (sa.select(Family).options(orm.joinedload(Family.caregivers))
           .where(Family.id == sa.bindparam("family_id", type_=sa.Uuid())))
# Read once the lock is held, into objects this session may have loaded before: what another
# transaction committed meanwhile is what the caller sees.
_FAMILY_AGAIN = _FAMILY.execution_options(populate_existing=True)
_LINKED = (sa.select(Family.id)
           .where(Family.id == sa.bindparam("family_id", type_=sa.Uuid()),
                  policy.family_link_clause(Family, sa.bindparam("organization_id",
                                                                 type_=sa.Uuid()))))
#: The family's row held (FOR UPDATE) or shared (FOR KEY SHARE), if the organization is linked
#: to it: the rows are filtered before they are locked, so anyone else never waits.
_HOLD_LINKED = {True: _LINKED.with_for_update(of=Family),
                False: _LINKED.with_for_update(read=True, key_share=True, of=Family)}


def get_family(family_id: uuid.UUID, *, lock=False, share=False,
               linked_to: uuid.UUID | None = None) -> Family | None:
    """The family with its caregivers, in one query; `lock` or `share`: first its row held
    (see `lock_family`) or shared (see `share_families`) until the transaction ends, then
    read as it is now (two queries). With `lock` or `share`, None unless `linked_to` (the
    caller's organization) is linked to the family (see `policy.family_link_clause`): an
    organization that may not learn a family exists neither holds its row nor waits on it,
    and is answered as for an unknown id (the family still named for the auditors)."""
    # Locked first, read after: a locking read that waited returns the family row as it is
    # now, but the caregivers joined to it as they were before the wait (PostgreSQL).
    if lock or share:
        if linked_to is None:  # the link clause would match no family: a silent 404
            raise TypeError("get_family(lock=/share=) needs linked_to")
        if lock and share:  # one would silently win
            raise TypeError("get_family: lock or share, not both")
        held = db.session.execute(_HOLD_LINKED[lock], {"family_id": family_id,
                                                       "organization_id": linked_to}).first()
        if held is None:
            known = db.session.scalar(sa.select(Family.id).where(Family.id == family_id))
            if known is not None:
                concerns_family(known)
            return None
    statement = _FAMILY_AGAIN if lock or share else _FAMILY
    family = db.session.execute(statement, {"family_id": family_id}).unique().scalar_one_or_none()
    if family is not None:
        concerns_family(family.id)
    return family


def lock_family(family_id: uuid.UUID) -> None:
    """Hold the family's row until the transaction ends: what changes what its consents cover
    (a revocation, a consent recorded, a change of its caregivers) and what rests on a consent
    (a send, every move of its referrals) take their turns instead of racing, and a look at
    its information waits for them (see `share_families`). No-op on SQLite, whose one writer
    already holds the database."""
    db.session.execute(sa.select(Family.id).where(Family.id == family_id).with_for_update())


def share_families(family_ids, *, skip_locked=False) -> list[Family]:
    """The families, their rows shared until the transaction ends (FOR KEY SHARE), in id order
    (`skip_locked`: leaving out those another request holds).

    Every look at a family's information under consent shares the family's row before it
    decides, and decides at the instant it holds it: a revocation in progress (which holds
    the row, see `lock_family`) finishes first and counts, and a revocation waits for the
    looks in progress, so none discloses under a consent after its revocation. The lock
    order is the family before its referrals, everywhere.
    """
    if not family_ids:
        return []
    return list(db.session.scalars(
        sa.select(Family).where(Family.id.in_(family_ids)).order_by(Family.id)
        .with_for_update(read=True, key_share=True, skip_locked=skip_locked)))


def family_document(family: Family, permitted=FAMILY_CATEGORIES, *, custodian=False) -> dict:
    """The record as a plain document holding only the permitted categories, and `redacted`;
    for its `custodian`, also when it last changed (what keeps a copy in step with the list's
    `updated_since`). Another organization is not told when a record changed: the change may
    be in a category withheld from it."""
    document = {
        "id": family.id,
        "custodian_organization_id": family.custodian_organization_id,
        "child": family.child,
        "caregivers": [{"id": c.id, **{f: getattr(c, f) for f in _CAREGIVER_FIELDS}}
                       for c in family.caregivers],
        "preferred_language": family.preferred_language,
        "interpreter_needed": family.interpreter_needed,
        "cultural_considerations": family.cultural_considerations,
        "contact_preferences": family.contact_preferences,
    }
    document = redact(document, FAMILY_FIELDS, permitted)
    # A caregiver of whom nothing is shown is not listed: ids alone would still tell how many
    # caregivers the family has, a fact of its household.
    document["caregivers"] = [c for c in document["caregivers"] if c.keys() != {"id"}]
    document["redacted"] = sorted(FAMILY_CATEGORIES - set(permitted))
    if custodian:
        document["updated_at"] = family.updated_at
    return document


def _apply(family: Family, data: dict) -> None:
    """Set the members `data` names, and only those: a PATCH's nested objects merge into the
    stored ones (a create sends them whole).

    Raises Problem 422 when the record would then say not to contact the family and how to.
    """
    for member, value in data.get("child", {}).items():
        setattr(family, _CHILD_COLUMNS[member], value)
    for field in _FAMILY_FIELDS:
        if field in data:
            setattr(family, field, data[field])
    if "contact_preferences" in data:
        for member, value in data["contact_preferences"].items():
            setattr(family, _CONTACT_COLUMNS[member], value)
        if family.do_not_contact and family.contact_methods:
            raise validation_problem({"contact_preferences.methods": [
                "A family that asked not to be contacted has no contact methods: send "
                "`methods: []` with `do_not_contact: true`"]})


#: The most likely duplicates a warning names.
DUPLICATES_NAMED = 20


def _likely_duplicates(actor, family: Family) -> list[uuid.UUID]:
    """The caller's own families with the same child name (case and Unicode form aside: its
    `child_name_key`) and birth date, newest first, at most DUPLICATES_NAMED; never another
    organization's. Compared in SQL: a custodian may hold thousands of children born the
    same day."""
    return list(db.session.scalars(
        sa.select(Family.id).where(
            policy.held_by_clause(Family, actor.organization_id),
            Family.child_birth_date == family.child_birth_date,
            Family.child_name_key == family.child_name_key,
            Family.id != family.id)
        .order_by(Family.created_at.desc(), Family.id).limit(DUPLICATES_NAMED)))


def _duplicate_warnings(actor, family: Family) -> list[dict]:
    if db.session.get_bind().dialect.name == "postgresql":
        # Intakes of children born the same day at one custodian take turns until they
        # commit, so of two alike at once the second sees the first and warns (each looked
        # only at what was committed: neither warned). SQLite has one writer already.
        db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(
            f"family intake {actor.organization_id} {family.child_birth_date}", 0))))
    duplicates = _likely_duplicates(actor, family)
    if not duplicates:
        return []
    return [{"code": "possible_duplicate", "family_ids": duplicates,
             "detail": "Your organization already holds a family with this child's name and "
                       "birth date"}]


def create_family(actor, *, data: dict) -> tuple[Family, list[dict]]:
    """Record a family; the caller becomes its custodian. Returns it with duplicate warnings."""
    family = Family(id=uuid.uuid4(), custodian_organization_id=actor.organization_id)
    _apply(family, data)
    family.caregivers = [Caregiver(position=n, **(_NEW_CAREGIVER | c))
                         for n, c in enumerate(data["caregivers"])]
    db.session.add(family)
    db.session.flush()
    concerns_family(family.id)
    warnings = _duplicate_warnings(actor, family)
    audit.record(action="create", outcome="permit", reason="custodian", resource_type="family",
                 resource_id=family.id, family_id=family.id, actor=actor,
                 categories=FAMILY_CATEGORIES)
    return family, warnings


def list_families(actor, *, limit: int, cursor: str | None = None,
                  updated_since: datetime | None = None) -> Page:
    """The caller's own families as documents, most recently changed first (a record's
    creation is its first change); `updated_since`: those changed at or after it."""
    stmt = sa.select(Family).where(policy.held_by_clause(Family, actor.organization_id))
    if updated_since is not None:
        stmt = stmt.where(Family.updated_at >= updated_since)
    # Ordered by the filter's own column, as the referral list is: one index serves both,
    # and a cursor bounds the same column the filter does.
    page = newest_first(stmt, kind="families", at=Family.updated_at, id=Family.id,
                        cursor=cursor, limit=limit)
    # Naming the families it listed: an auditor following one family finds this look too.
    audit.record(action="search", outcome="permit", reason="custodian", resource_type="family",
                 actor=actor, categories=FAMILY_CATEGORIES if page.items else (),
                 family_ids=[family.id for family in page.items])
    page.items = [family_document(family, custodian=True) for family in page.items]
    return page


def read_family(actor, *, family_id: uuid.UUID, purpose: str) -> tuple[dict, int]:
    """The record as the caller may see it for `purpose`, with its version; access recorded.

    Raises Problem 404 when the family does not exist or no category is permitted.
    """
    family = get_family(family_id, share=True, linked_to=actor.organization_id)
    if family is None:
        raise _not_found(family_id, reason="not_found", purpose=purpose)
    decision = policy.decide(actor_organization_id=actor.organization_id, family=family,
                             purpose=purpose, categories=FAMILY_CATEGORIES, at=now())
    if decision.nothing_permitted:
        raise _not_found(family_id, reason=decision.reason, family_id=family.id,
                         purpose=purpose, categories=sorted(decision.asked))
    audit.record(action="read", outcome="permit", reason=decision.reason,
                 resource_type="family", resource_id=family.id, family_id=family.id,
                 purpose=purpose, categories=decision.permitted,
                 consent_ids=decision.consent_ids, actor=actor)
    return family_document(family, decision.permitted,
                           custodian=policy.holds(actor.organization_id, family)), family.version


def list_disclosures(actor, *, family_id: uuid.UUID, limit: int,
                     cursor: str | None = None) -> Page:
    """The accounting of disclosures of a family, for its custodian and for auditors.

    Raises Problem 404 for an unknown family, or a caller that is neither.
    """
    family = get_family(family_id)
    if family is None or not policy.may_read_disclosures(
            actor_organization_id=actor.organization_id, scopes=actor.scopes, family=family):
        raise _not_found(family_id, reason="not_found",
                         family_id=family.id if family else None)
    auditor = "audit:read" in actor.scopes
    page = audit_service.disclosures(
        family_id=family.id, custodian_organization_id=family.custodian_organization_id,
        limit=limit, cursor=cursor)
    audit.record(action="read", outcome="permit", reason="auditor" if auditor else "custodian",
                 resource_type="disclosures", resource_id=family.id, family_id=family.id,
                 actor=actor)
    return page


def update_family(actor, *, family_id: uuid.UUID, changes: dict,
                  preconditions: Preconditions) -> tuple[Family, list[dict]]:
    """Change the members of a family record that `changes` names; only its custodian may.
    Returns it with duplicate warnings when the change sent the child's identity.

    Raises Problem 404 (unknown, or not visible), 403 (visible under consent but not the
    custodian's), 412 (stale If-Match), 409 (removing a caregiver who granted a consent),
    422 (an unknown caregiver id; do-not-contact with contact methods).
    """
    # Locked: a consent being recorded or revoked, which checks the caregivers, goes before
    # or after this change, so the consent check below sees it.
    family = get_family(family_id, lock=True, linked_to=actor.organization_id)
    if family is None:
        raise _not_found(family_id, reason="not_found", action="update")
    if not policy.holds(actor.organization_id, family):
        if not policy.may_see_family(actor_organization_id=actor.organization_id,
                                     family=family, at=now()):
            raise _not_found(family_id, reason="no_consent", action="update",
                             family_id=family.id)
        raise Problem("forbidden", "Only the family's custodian changes its record",
                      audit={"action": "update", "resource_type": "family",
                             "resource_id": family.id, "family_id": family.id,
                             "reason": "not_custodian"})
    check_preconditions(preconditions, family.version, required=False,
                        audit={"family_id": family.id})
    _apply(family, changes)
    if "caregivers" in changes:
        _replace_caregivers(family, changes["caregivers"])
    if db.session.is_modified(family) or any(db.session.is_modified(c) or c in db.session.new
                                             for c in family.caregivers):
        # A caregiver change versions the family record too, even within one clock instant.
        family.updated_at = now()
        orm.attributes.flag_modified(family, "updated_at")
    db.session.flush()
    # A rename can make the duplicate a create would have been warned of.
    warnings = _duplicate_warnings(actor, family) if "child" in changes else []
    audit.record(action="update", outcome="permit", reason="custodian", resource_type="family",
                 resource_id=family.id, family_id=family.id, actor=actor,
                 categories=_changed_categories(changes))
    return family, warnings


def _changed_categories(changes: dict) -> list[str]:
    categories = set()
    for field in changes:
        category = FAMILY_FIELDS.get(field)
        if isinstance(category, dict):
            categories |= set(category.values())
        elif category:
            categories.add(category)
    return sorted(categories)


def _replace_caregivers(family: Family, wanted: list[dict]) -> None:
    existing = {c.id: c for c in family.caregivers}
    unknown = [str(c["id"]) for c in wanted if "id" in c and c["id"] not in existing]
    if unknown:
        raise Problem("validation-error", "A caregiver id does not belong to this family",
                      errors={"caregivers": [f"Unknown caregiver {i}" for i in unknown]})
    kept = {c["id"] for c in wanted if "id" in c}
    removed = [cid for cid in existing if cid not in kept]
    if removed:
        granted = db.session.scalar(sa.select(Consent.id).where(
            sa.or_(Consent.grantor_caregiver_id.in_(removed),
                   Consent.revocation_caregiver_id.in_(removed))).limit(1))
        if granted is not None:
            raise Problem("conflict", "A caregiver who granted or revoked a consent stays on "
                                      "the record; mark changes in their details instead",
                          audit={"family_id": family.id})
    caregivers = []
    for position, item in enumerate(wanted):
        if "id" in item:  # the stored caregiver, with the members sent changed
            caregiver = existing[item["id"]]
            changed = {f: v for f, v in item.items() if f != "id"}
        else:
            caregiver, changed = Caregiver(), _NEW_CAREGIVER | item
        caregiver.position = position
        for field, value in changed.items():
            setattr(caregiver, field, value)
        caregivers.append(caregiver)
    family.caregivers = caregivers
