"""The decision engine: may organization X see category C of family F for purpose P, now?

The one place in the service that decides disclosure. `decide_over` is a pure function over
the family's custodian, the author of the information and the consents in force; `decide`
(and a `Viewer`, which asks several questions of one family) loads those consents with one
indexed query (`consents_in_force`; `families_consents_in_force`, for a page of several
families at once, see `Viewers`) and decides over them.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from consent.categories import CONSENT_CATEGORIES, FAMILY_CATEGORIES, PURPOSES
from consent.models import Consent, ConsentParty
from core.db import UTCDateTime, db


@dataclass(frozen=True)
class Decision:
    """What the engine allows one organization to see, and why."""

    asked: frozenset[str]
    permitted: frozenset[str]
    #: The consents the permission rests on (none for the custodian or the author).
    consent_ids: tuple[uuid.UUID, ...]
    #: `custodian`, `author`, `consent`, `partial_consent` or `no_consent`.
    reason: str
    #: The purpose decided for; None when decisions for several were combined.
    purpose: str | None = None

    @property
    def decision(self) -> str:
        """`permit` only when every asked category is permitted."""
        return "permit" if self.asked <= self.permitted else "deny"

    @property
    def withheld(self) -> list[str]:
        return sorted(self.asked - self.permitted)

    @property
    def nothing_permitted(self) -> bool:
        return not self.permitted


@dataclass(frozen=True)
class ConsentTerms:
    """What the engine reads of a consent: when it is in force, for what, covering what."""

    id: uuid.UUID
    purposes: list[str]
    categories: list[str]
    effective_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def in_force(consent, at: datetime) -> bool:
    """Whether a consent (or its terms) is in force at instant `at`."""
    return (consent.effective_at <= at < consent.expires_at
            and (consent.revoked_at is None or consent.revoked_at > at))


# Built once, in Core on the session's connection: this query runs on every disclosure, and
# what it returns are plain values, not objects to track.
_consents = Consent.__table__
_ACTOR, _AUTHOR = (ConsentParty.__table__.alias("actor_party"),
                   ConsentParty.__table__.alias("author_party"))
#: `in_force` in SQL, at the statement's `at`.
_IN_FORCE = sa.and_(
    _consents.c.effective_at <= sa.bindparam("at", type_=UTCDateTime()),
    _consents.c.expires_at > sa.bindparam("at", type_=UTCDateTime()),
    sa.or_(_consents.c.revoked_at.is_(None),
           _consents.c.revoked_at > sa.bindparam("at", type_=UTCDateTime())))
_TERMS = (
    sa.select(_consents.c.id, _consents.c.purposes, _consents.c.categories,
              _consents.c.effective_at, _consents.c.expires_at, _consents.c.revoked_at)
    .join(_ACTOR, _ACTOR.c.consent_id == _consents.c.id)
    .join(_AUTHOR, _AUTHOR.c.consent_id == _consents.c.id)
    # Typed parameters: a foreign key's type is not known yet when this module is imported.
    .where(_ACTOR.c.organization_id == sa.bindparam("actor", type_=sa.Uuid()),
           _ACTOR.c.family_id == sa.bindparam("family", type_=sa.Uuid()),
           _AUTHOR.c.organization_id == sa.bindparam("author", type_=sa.Uuid()),
           _IN_FORCE)
    .order_by(_consents.c.recorded_at, _consents.c.id)
)


def consents_in_force(*, family_id: uuid.UUID, actor_organization_id: uuid.UUID,
                      author_organization_id: uuid.UUID, at: datetime) -> list[ConsentTerms]:
    """The terms of the family's consents naming both organizations and in force at `at`:
    one indexed query (consent_parties by organization and family)."""
    rows = db.session.connection().execute(_TERMS, {
        "actor": actor_organization_id, "family": family_id,
        "author": author_organization_id, "at": at})
    return [ConsentTerms(*row) for row in rows]


_PARTY = ConsentParty.__table__.alias("party")
# A page's families at once: each consent in force with every organization it names.
_FAMILIES_TERMS = (
    sa.select(_consents.c.family_id, _consents.c.id, _consents.c.purposes,
              _consents.c.categories, _consents.c.effective_at, _consents.c.expires_at,
              _consents.c.revoked_at, _PARTY.c.organization_id)
    .join(_PARTY, _PARTY.c.consent_id == _consents.c.id)
    .where(_consents.c.family_id.in_(sa.bindparam("families", expanding=True,
                                                  type_=sa.Uuid())),
           _IN_FORCE)
    .order_by(_consents.c.family_id, _consents.c.recorded_at, _consents.c.id)
)

#: A family's consents in force, each with the organizations it names.
FamilyTerms = list[tuple[ConsentTerms, frozenset[uuid.UUID]]]


def families_consents_in_force(family_ids, *, at: datetime) -> dict[uuid.UUID, FamilyTerms]:
    """The consents in force at `at` of several families, each with the organizations it
    names, by family: one indexed query (consents by family), for the viewers of a page."""
    family_ids = list(family_ids)
    found: dict[uuid.UUID, dict[uuid.UUID, tuple[ConsentTerms, set]]] = {
        family_id: {} for family_id in family_ids}
    if family_ids:
        for family_id, *terms, organization_id in db.session.connection().execute(
                _FAMILIES_TERMS, {"families": family_ids, "at": at}):
            found[family_id].setdefault(terms[0], (ConsentTerms(*terms), set()))[1].add(
                organization_id)
    return {family_id: [(terms, frozenset(parties)) for terms, parties in consents.values()]
            for family_id, consents in found.items()}


_IN_FORCE_AMONG = sa.select(_consents.c.id).where(
    _consents.c.id.in_(sa.bindparam("ids", expanding=True, type_=sa.Uuid())), _IN_FORCE)


def ended_among(consent_ids: Iterable, *, at: datetime) -> list[str]:
    """Those of `consent_ids` not in force at `at` (revoked, expired), in their order, as
    strings: one look by primary key."""
    consent_ids = [str(c) for c in consent_ids]
    if not consent_ids:
        return []
    in_force = {str(c) for c in db.session.connection().execute(
        _IN_FORCE_AMONG, {"ids": [uuid.UUID(c) for c in consent_ids], "at": at}).scalars()}
    return [c for c in consent_ids if c not in in_force]


def decide_over(*, actor_organization_id: uuid.UUID, custodian_organization_id: uuid.UUID,
                author_organization_id: uuid.UUID, purpose: str, categories: Iterable[str],
                consents: Iterable, at: datetime) -> Decision:
    """The decision, from data already loaded (pure: no I/O).

    `consents` are those naming both the actor and the author (as `consents_in_force`
    loads them), as `Consent` rows or `ConsentTerms`.
    """
    asked = frozenset(categories)
    if actor_organization_id == author_organization_id:
        # The custodian's family record is its own information; what another organization
        # wrote about the family (a provider's feedback, its notes) is that author's.
        reason = "custodian" if author_organization_id == custodian_organization_id else "author"
        return Decision(asked, asked, (), reason, purpose)
    permitted: set[str] = set()
    relied_on: list[uuid.UUID] = []
    for consent in consents:
        if not in_force(consent, at) or purpose not in consent.purposes:
            continue
        granted = asked & set(consent.categories)
        if granted - permitted:
            relied_on.append(consent.id)
            permitted |= granted
    if not permitted:
        reason = "no_consent"
    else:
        reason = "consent" if asked <= permitted else "partial_consent"
    return Decision(asked, frozenset(permitted), tuple(relied_on), reason, purpose)


def decide(*, actor_organization_id: uuid.UUID, family, purpose: str,
           categories: Iterable[str], author_organization_id: uuid.UUID | None = None,
           at: datetime) -> Decision:
    """May the actor see these categories of the family's information, authored by
    `author_organization_id` (default: the family's custodian), for `purpose`, at `at`?

    The author sees its own information, and so the custodian its family record. Anyone else,
    the custodian included for what another organization wrote, sees a category only when a
    consent in force at `at` names the actor, the author, the purpose and the category.
    Several consents combine. Everything else is denied.
    """
    return Viewer(actor_organization_id=actor_organization_id, family=family, at=at).decide(
        purpose=purpose, categories=categories, author_organization_id=author_organization_id)


def holds(actor_organization_id: uuid.UUID, family) -> bool:
    """Whether the actor is the family's custodian: it holds the record, sees all of it
    without a consent, and alone changes it."""
    return actor_organization_id == family.custodian_organization_id


def held_by_clause(model, actor_organization_id):
    """The families the actor holds (`holds`), as a clause on `model`: its own list, and the
    families a new record may duplicate."""
    return model.custodian_organization_id == actor_organization_id


def family_link_clause(model, actor_organization_id):
    """The families the actor is linked to, as one clause on `model`: its custodian, and the
    organizations a consent of the family ever named, which may list the family's consents
    and ask the engine about it. A look or a change holds a family's row only for an
    organization that may learn the family exists, so no one else waits on it (a wait, or
    its timeout, would tell)."""
    return sa.or_(held_by_clause(model, actor_organization_id),
                  sa.exists().where(ConsentParty.family_id == model.id,
                                    ConsentParty.organization_id == actor_organization_id))


def may_see_family(*, actor_organization_id: uuid.UUID, family, at: datetime,
                   categories: Iterable[str] = FAMILY_CATEGORIES) -> bool:
    """Whether the actor holds the family, or may now see any of `categories` of its record
    (by default: any of it) for any purpose."""
    return sight(actor_organization_id=actor_organization_id, family=family, at=at,
                 categories=categories) is not None


def sight(*, actor_organization_id: uuid.UUID, family, at: datetime,
          categories: Iterable[str] = FAMILY_CATEGORIES) -> Decision | None:
    """The decision by which the actor now sees any of `categories` of the family's record:
    the custodian's own, or the first purpose's (in PURPOSES order) that permits one; None
    when none does. What an answer tells of those categories is a disclosure under it."""
    viewer = Viewer(actor_organization_id=actor_organization_id, family=family, at=at)
    return next((decision for purpose in PURPOSES
                 if (decision := viewer.decide(purpose=purpose, categories=categories))
                 .permitted), None)


@dataclass(frozen=True)
class ConsentView:
    """What of a consent record an organization may see."""

    #: The free-text revocation reason: for the custodian and whoever recorded it.
    shows_revocation_reason: bool
    #: `custodian`, `author` (the consent's recorder), `consent` or `party`.
    reason: str
    #: The instant it was decided at: the record's `status` is the one at that instant too.
    at: datetime
    #: Categories of the family's information the record shows (see CONSENT_FIELDS) when no
    #: consent is needed for them (the recorder's own).
    own: frozenset[str] = frozenset()
    #: The family facts shown under consent: one decision for each purpose they were
    #: permitted for, each with its categories and consents (a disclosure to account for).
    disclosures: tuple[Decision, ...] = ()

    @property
    def permitted(self) -> frozenset[str]:
        return self.own.union(*(d.permitted for d in self.disclosures))

    @property
    def discloses(self) -> bool:
        return bool(self.disclosures)


def consent_facts_decisions(viewer: "Viewer", *,
                            recorder_organization_id: uuid.UUID) -> tuple[Decision, ...]:
    """The family facts a consent record holds (CONSENT_FIELDS: the grantor's legal
    authority, the language it was explained in), which its recorder wrote, that may be
    shown to the viewer now: the decisions of the purposes that permit them, the one that
    permits the most first, then any that permits more (every disclosure names its purpose);
    none when nothing is permitted."""
    decisions = sorted((viewer.decide(purpose=purpose, categories=CONSENT_CATEGORIES,
                                      author_organization_id=recorder_organization_id)
                        for purpose in PURPOSES), key=lambda d: -len(d.permitted))
    chosen, shown = [], frozenset()
    for decision in decisions:
        if decision.permitted - shown:
            chosen.append(decision)
            shown |= decision.permitted
    return tuple(chosen)


def consents_naming(organization_id: uuid.UUID, consent_ids: Iterable) -> set[str]:
    """Those of `consent_ids` that name the organization, in one look."""
    wanted = {uuid.UUID(str(c)) for c in consent_ids}
    if not wanted:
        return set()
    return {str(c) for c in db.session.scalars(
        sa.select(ConsentParty.consent_id).where(ConsentParty.organization_id == organization_id,
                                                 ConsentParty.consent_id.in_(wanted)))}


def consents_known_clause(actor_organization_id: uuid.UUID, family):
    """The family's consents the actor may know exist, as a clause on Consent (the rule of
    `consents_known_to` and `view_of_consent`): every one for the custodian, those naming it
    for anyone else."""
    if holds(actor_organization_id, family):
        return sa.true()
    return Consent.id.in_(sa.select(ConsentParty.consent_id).where(
        ConsentParty.organization_id == actor_organization_id,
        ConsentParty.family_id == family.id))


def consents_known_to(viewer: "Viewer", consent_ids: Iterable, *, relied_on: Iterable = (),
                      naming: set[str] | None = None) -> list:
    """Those of `consent_ids` the viewer may know exist, in their order (view_of_consent's
    rule: the custodian knows its family's every consent, anyone else those naming it).
    `relied_on`: ids of consents its own decisions rested on (naming it), spared the look;
    `naming`: every one of them naming it, looked up already (a page's, at once)."""
    consent_ids = list(consent_ids)
    if holds(viewer.actor_organization_id, viewer.family):
        return consent_ids
    known = {str(c) for c in relied_on}
    if naming is not None:
        known |= naming
    else:
        unknown = [c for c in consent_ids if str(c) not in known]
        known |= consents_naming(viewer.actor_organization_id, unknown)
    return [c for c in consent_ids if str(c) in known]


def view_of_consent(viewer: "Viewer", consent) -> ConsentView | None:
    """What the viewer may see of a consent record, or None when it may not know it exists.

    The custodian and the organizations it names see the record itself (one named needs to
    know, say, that it was revoked); the custodian and the revoker its revocation reason. The
    family facts in it are its recorder's: the recorder sees them, anyone else (the custodian
    included) only under a consent in force naming it and the recorder.
    """
    actor = viewer.actor_organization_id
    custodian = actor == viewer.family.custodian_organization_id
    if not custodian and actor not in consent.organization_ids:
        return None
    shows_reason = custodian or consent.revoked_by_organization_id == actor
    if actor == consent.recorded_by_organization_id:
        return ConsentView(shows_reason, "custodian" if custodian else "author",
                           own=CONSENT_CATEGORIES, at=viewer.at)
    disclosures = consent_facts_decisions(
        viewer, recorder_organization_id=consent.recorded_by_organization_id)
    return ConsentView(shows_reason,
                       "consent" if disclosures else "custodian" if custodian else "party",
                       disclosures=disclosures, at=viewer.at)


def may_read_disclosures(*, actor_organization_id: uuid.UUID, scopes, family) -> bool:
    """The accounting of a family's disclosures: for auditors, and for its custodian."""
    return "audit:read" in scopes or (
        "families:read" in scopes and holds(actor_organization_id, family))


class Viewer:
    """One organization's view of one family at one instant: `decide` for any author and
    purpose, loading each author's consents once (a referral read asks about several).
    `terms`: the family's consents in force at `at`, loaded already (see `Viewers`)."""

    def __init__(self, *, actor_organization_id: uuid.UUID, family, at: datetime,
                 terms: FamilyTerms | None = None):
        self.actor_organization_id = actor_organization_id
        self.family = family
        self.at = at
        self._terms = terms
        self._consents: dict[uuid.UUID, list[ConsentTerms]] = {}

    def _consents_with(self, author: uuid.UUID) -> list[ConsentTerms]:
        if author not in self._consents:
            actor = self.actor_organization_id
            self._consents[author] = consents_in_force(
                family_id=self.family.id, actor_organization_id=actor,
                author_organization_id=author, at=self.at) if self._terms is None else [
                terms for terms, parties in self._terms if actor in parties and author in parties]
        return self._consents[author]

    def decide(self, *, purpose: str, categories: Iterable[str],
               author_organization_id: uuid.UUID | None = None) -> Decision:
        """As `decide`, for this viewer; `author_organization_id` None: the custodian."""
        custodian = self.family.custodian_organization_id
        author = author_organization_id or custodian
        if not categories:
            return Decision(frozenset(), frozenset(), (), "nothing_asked", purpose)
        consents = () if self.actor_organization_id == author else self._consents_with(author)
        return decide_over(actor_organization_id=self.actor_organization_id,
                           custodian_organization_id=custodian, author_organization_id=author,
                           purpose=purpose, categories=categories, consents=consents, at=self.at)


class Viewers:
    """The engine's viewers of several families at one instant (a page of referrals, a sweep's
    batch), one per family and organization, over the families' consents in force, loaded
    together in one query when first asked."""

    def __init__(self, families, *, at: datetime):
        self.families = {family.id: family for family in families}
        self.at = at
        self._terms: dict[uuid.UUID, FamilyTerms] | None = None
        self._viewers: dict[tuple[uuid.UUID, uuid.UUID], Viewer] = {}

    def _loaded(self) -> dict[uuid.UUID, FamilyTerms]:
        if self._terms is None:
            self._terms = families_consents_in_force(self.families, at=self.at)
        return self._terms

    def consents_naming(self, organization_id: uuid.UUID, consent_ids: Iterable) -> set[str]:
        """Those of `consent_ids` that name the organization: known from the consents in force
        loaded already, and the rest (ended since) looked up at once, if any."""
        in_force = {str(terms.id) for family in self._loaded().values()
                    for terms, parties in family if organization_id in parties}
        rest = {str(c) for c in consent_ids} - {str(t.id) for family in self._loaded().values()
                                                for t, _ in family}
        return in_force | consents_naming(organization_id, rest)

    def ended_among(self, family_id: uuid.UUID, consent_ids: Iterable) -> list[str]:
        """`ended_among` for one of the families, from its consents in force loaded already."""
        in_force = {str(terms.id) for terms, _ in self._loaded()[family_id]}
        return [str(c) for c in consent_ids if str(c) not in in_force]

    def of(self, organization_id: uuid.UUID, family_id: uuid.UUID) -> Viewer:
        """The organization's viewer of one of the families."""
        key = (family_id, organization_id)
        if key not in self._viewers:
            self._loaded()
            self._viewers[key] = Viewer(actor_organization_id=organization_id,
                                        family=self.families[family_id], at=self.at,
                                        terms=self._terms[family_id])
        return self._viewers[key]


def by_purpose(decisions: Iterable[Decision]) -> dict[str, Decision]:
    """The disclosures among `decisions` (those resting on a consent), combined by purpose:
    the accounting of disclosures names one purpose for each, with its categories and
    consents."""
    grouped: dict[str, list[Decision]] = {}
    for decision in decisions:
        if decision.consent_ids:
            grouped.setdefault(decision.purpose, []).append(decision)
    return {purpose: combine(*shown) for purpose, shown in grouped.items()}


def combine(*decisions: Decision) -> Decision:
    """Several decisions (other authors, other purposes) as one: what was asked and permitted
    in all, the consents relied on, and the reason of the whole."""
    asked = frozenset().union(*(d.asked for d in decisions))
    permitted = frozenset().union(*(d.permitted for d in decisions))
    consent_ids = tuple(dict.fromkeys(c for d in decisions for c in d.consent_ids))
    if consent_ids:
        reason = "consent" if asked <= permitted else "partial_consent"
    elif asked - permitted:
        reason = "no_consent"
    else:
        reason = next((d.reason for d in decisions if d.asked), "party")
    purposes = {d.purpose for d in decisions}
    return Decision(asked, permitted, consent_ids, reason,
                    purposes.pop() if len(purposes) == 1 else None)


# -- referrals ------------------------------------------------------------------------------

def referral_side(*, actor_organization_id: uuid.UUID, referral) -> str | None:
    """`sender` or `receiver`, or None for an organization that may not know the referral
    exists: a third organization, or the receiver of a referral never sent (a draft, or a
    draft cancelled before it was sent)."""
    if actor_organization_id == referral.from_organization_id:
        return "sender"
    if actor_organization_id == referral.to_organization_id and referral.sent_at is not None:
        return "receiver"
    return None


def referral_party_sides(model, actor_organization_id: uuid.UUID,
                         direction: str | None = None) -> list:
    """`referral_side` as SQL over the referral model, one clause per side the actor is a
    party on (`direction` "sent" or "received": that side only). The sides are disjoint: a
    referral's two organizations differ."""
    sent = model.from_organization_id == actor_organization_id
    received = sa.and_(model.to_organization_id == actor_organization_id,
                       model.sent_at.is_not(None))
    return {"sent": [sent], "received": [received]}.get(direction, [sent, received])


def referral_party_clause(model, actor_organization_id: uuid.UUID):
    """The referrals the actor is a party to (see `referral_party_sides`), as one clause."""
    return sa.or_(*referral_party_sides(model, actor_organization_id))


def referral_shared_decisions(viewer: Viewer, *, sender_organization_id: uuid.UUID,
                              shared_categories) -> tuple[Decision, Decision]:
    """What the viewer may see, for purpose `referral`, of the categories a referral shares:
    the family record's (its custodian authors them), and the rest (the sender authors them:
    reasons, screening, health, child welfare)."""
    shared = frozenset(shared_categories)
    return (viewer.decide(purpose="referral", categories=shared & FAMILY_CATEGORIES),
            viewer.decide(purpose="referral", categories=shared - FAMILY_CATEGORIES,
                          author_organization_id=sender_organization_id))


def referral_receiver_decision(viewer: Viewer, *, sender_organization_id: uuid.UUID,
                               shared_categories) -> Decision:
    """May the receiver (`viewer`) see everything a sent referral shares, as its read
    decides? What keeps the referral open: the service holds it when not, and the receiver
    resumes it only when so again. Whether the sender may still see the family was a
    condition of passing it on (`referral_send_decision`), not of the receiver's work."""
    return combine(*referral_shared_decisions(viewer, sender_organization_id=sender_organization_id,
                                              shared_categories=shared_categories))


def referral_send_decision(*, family, sender_organization_id: uuid.UUID,
                           receiver_organization_id: uuid.UUID, shared_categories,
                           at: datetime) -> Decision:
    """May the sender share these categories with the receiver for purpose `referral`?

    Every shared category must pass: a consent in force names the sender, the receiver, the
    purpose and the category; the receiver may see it (a consent names the receiver and the
    category's author); and the sender may see what it passes on from a family record it does
    not hold. When the sender holds the family these are one and the same consent.
    `withheld` names what is missing; `consent_ids` are every consent it rests on.
    """
    receiver_viewer = Viewer(actor_organization_id=receiver_organization_id, family=family, at=at)
    receiver = referral_receiver_decision(receiver_viewer,
                                          sender_organization_id=sender_organization_id,
                                          shared_categories=shared_categories)
    of_family = frozenset(shared_categories) & FAMILY_CATEGORIES
    of_sender = receiver.asked - of_family
    permitted = receiver.permitted
    consent_ids = receiver.consent_ids
    if of_family and sender_organization_id != family.custodian_organization_id:
        sender = Viewer(actor_organization_id=sender_organization_id, family=family,
                        at=at).decide(purpose="referral", categories=of_family)
        # Passed on by the sender, the record's categories need the sender and the receiver
        # named together, as the sender's own information does.
        passed_on = receiver_viewer.decide(purpose="referral", categories=of_family,
                                           author_organization_id=sender_organization_id)
        permitted &= (sender.permitted & passed_on.permitted) | of_sender
        consent_ids = tuple(dict.fromkeys(
            (*consent_ids, *passed_on.consent_ids, *sender.consent_ids)))
    reason = receiver.reason if permitted == receiver.permitted else (
        "partial_consent" if permitted else "no_consent")
    return Decision(receiver.asked, permitted, consent_ids, reason, "referral")


def decide_authored(viewer: Viewer, *, purpose: str, category: str,
                     author_organization_id: uuid.UUID | None) -> Decision:
    """What the viewer may see of one piece of referral information (status feedback, a note)
    of `category` written by `author_organization_id` (None: by the service itself, which
    both sides see)."""
    if author_organization_id is None:
        return Decision(frozenset({category}), frozenset({category}), (), "service", purpose)
    return viewer.decide(purpose=purpose, categories=[category],
                         author_organization_id=author_organization_id)
