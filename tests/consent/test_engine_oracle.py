"""The decision engine against an oracle written from DOMAIN.md, over generated consents.

The oracle reads the rule as the domain states it, and nothing of the engine's code: an
organization sees a category of information when it wrote it, or when a consent in force at
that instant names it, the information's author, the purpose and the category. Consents are
generated among four organizations with instants on both sides of the one decided at, a
microsecond apart, so every boundary (`effective_at`, `expires_at`, `revoked_at`) is crossed.
"""

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consent import policy
from consent.categories import CATEGORIES, FAMILY_CATEGORIES, PURPOSES

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
#: Instants around AT: a day and a microsecond either side, and AT itself.
INSTANTS = [AT + timedelta(microseconds=n) for n in (-2, -1, 0, 1, 2)] + [
    AT - timedelta(days=1), AT + timedelta(days=1)]
ORGANIZATIONS = [uuid.UUID(int=n) for n in range(1, 5)]
CUSTODIAN = ORGANIZATIONS[0]
FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)


@dataclass(frozen=True)
class Consent:
    id: uuid.UUID
    parties: frozenset
    purposes: list
    categories: list
    effective_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def oracle_sees(actor, author, purpose, category, consents, at=AT) -> bool:
    """DOMAIN.md, Consent, precisely: the author sees its own; else an active consent names
    both organizations, the purpose and the category."""
    return actor == author or any(
        {actor, author} <= c.parties and purpose in c.purposes and category in c.categories
        and oracle_in_force(c, at) for c in consents)


def oracle_in_force(consent, at=AT) -> bool:
    """Started, not expired, not revoked, at the instant."""
    return (consent.effective_at <= at < consent.expires_at
            and (consent.revoked_at is None or at < consent.revoked_at))


ALL_CATEGORIES, ALL_PURPOSES = tuple(sorted(CATEGORIES)), tuple(sorted(PURPOSES))


@st.composite
def consents(draw, organizations=ORGANIZATIONS, categories=ALL_CATEGORIES,
             purposes=ALL_PURPOSES, instants=INSTANTS):
    """Up to four consents among `organizations`, for some of `purposes` and `categories`,
    starting, ending and revoked at some of `instants`."""
    found = []
    for _ in range(draw(st.integers(0, 4))):
        start, end = sorted(draw(st.lists(st.sampled_from(instants), min_size=2, max_size=2,
                                          unique=True)))
        found.append(Consent(
            id=uuid.uuid4(),
            parties=frozenset(draw(st.lists(st.sampled_from(organizations), min_size=2,
                                            unique=True))),
            purposes=draw(st.lists(st.sampled_from(purposes), min_size=1, unique=True)),
            categories=draw(st.lists(st.sampled_from(categories), min_size=1, unique=True)),
            effective_at=start, expires_at=end,
            revoked_at=draw(st.none() | st.sampled_from(instants))))
    return found


class _Family:
    id = uuid.UUID(int=99)
    custodian_organization_id = CUSTODIAN


def viewer(actor, found) -> policy.Viewer:
    """The engine's viewer over the generated consents (as `Viewers` hands them over)."""
    terms = [(policy.ConsentTerms(c.id, c.purposes, c.categories, c.effective_at,
                                  c.expires_at, c.revoked_at), c.parties) for c in found]
    return policy.Viewer(actor_organization_id=actor, family=_Family(), at=AT, terms=terms)


def _relied_on_covers(decision, actor, author, found):
    """Every consent relied on is one the oracle would accept for what it granted, and
    together they grant exactly what was permitted."""
    by_id = {c.id: c for c in found}
    granted = set()
    for consent_id in decision.consent_ids:
        consent = by_id[consent_id]
        covered = {cat for cat in decision.asked
                   if oracle_sees(actor, author, decision.purpose, cat, [consent])}
        assert covered, consent
        granted |= covered
    return granted


@FAST
@given(found=consents(), actor=st.sampled_from(ORGANIZATIONS),
       author=st.sampled_from(ORGANIZATIONS), purpose=st.sampled_from(sorted(PURPOSES)),
       asked=st.sets(st.sampled_from(sorted(CATEGORIES)), min_size=1))
def test_each_decision_is_the_oracles(found, actor, author, purpose, asked):
    decision = viewer(actor, found).decide(purpose=purpose, categories=asked,
                                           author_organization_id=author)
    expected = {c for c in asked if oracle_sees(actor, author, purpose, c, found)}
    assert decision.permitted == expected
    assert decision.withheld == sorted(asked - expected)
    assert decision.decision == ("permit" if expected == asked else "deny")
    if actor == author:
        assert decision.consent_ids == ()
        assert decision.reason == ("custodian" if author == CUSTODIAN else "author")
    else:
        assert _relied_on_covers(decision, actor, author, found) == expected
        assert decision.reason == (
            "no_consent" if not expected else "consent" if expected == asked
            else "partial_consent")


@FAST
@given(found=consents(), sender=st.sampled_from(ORGANIZATIONS),
       receiver=st.sampled_from(ORGANIZATIONS),
       shared=st.sets(st.sampled_from(sorted(CATEGORIES)), min_size=1))
def test_a_sent_referral_is_supported_when_its_receiver_may_see_all_it_shares(
        found, sender, receiver, shared):
    """The family record's categories are the custodian's; the rest are the sender's."""
    if sender == receiver:
        return
    decision = policy.referral_receiver_decision(
        viewer(receiver, found), sender_organization_id=sender, shared_categories=shared)
    expected = {c for c in shared if oracle_sees(
        receiver, CUSTODIAN if c in FAMILY_CATEGORIES else sender, "referral", c, found)}
    assert (decision.asked, decision.permitted) == (shared, expected)


#: The custodian, a sender that does not hold the family, and a receiver.
HOLDER, RELAY, RECEIVER = ORGANIZATIONS[:3]
#: What one consent among them may cover: nothing, or these categories for these purposes.
TERMS = (None, (("referral",), ("identity",)), (("referral",), ("referral_reason",)),
         (("referral", "treatment"), ("identity", "referral_reason")),
         (("care_coordination",), ("identity", "referral_reason")))


def test_a_send_passes_only_what_the_oracle_lets_the_sender_pass_on(monkeypatch):
    """Sending needs more than the receiver's sight: a sender that does not hold the family
    passes its record on only when it may see it, and a consent names it and the receiver.
    Every combination of consents naming two or three of them (all in force: the boundaries
    are the tests' above), every sender, every share."""
    namings = ({HOLDER, RELAY}, {HOLDER, RECEIVER}, {RELAY, RECEIVER}, {HOLDER, RELAY, RECEIVER})
    found = []

    def loaded(*, family_id, actor_organization_id, author_organization_id, at):
        """The consents of the case, as the engine's query would load them."""
        return [policy.ConsentTerms(c.id, c.purposes, c.categories, c.effective_at,
                                    c.expires_at, c.revoked_at) for c in found
                if {actor_organization_id, author_organization_id} <= c.parties
                and oracle_in_force(c, at)]

    monkeypatch.setattr(policy, "consents_in_force", loaded)
    for chosen in itertools.product(TERMS, repeat=len(namings)):
        found[:] = [Consent(uuid.uuid4(), frozenset(parties), list(terms[0]), list(terms[1]),
                            AT - timedelta(days=1), AT + timedelta(days=1), None)
                    for parties, terms in zip(namings, chosen, strict=True) if terms]
        for sender in (HOLDER, RELAY):
            for shared in ({"identity"}, {"referral_reason"}, {"identity", "referral_reason"}):
                _check_send(found, sender, RECEIVER, shared)


def _check_send(found, sender, receiver, shared):
    decision = policy.referral_send_decision(
        family=_Family(), sender_organization_id=sender, receiver_organization_id=receiver,
        shared_categories=shared, at=AT)

    def passes(category):
        if category not in FAMILY_CATEGORIES:
            return oracle_sees(receiver, sender, "referral", category, found)
        return (oracle_sees(receiver, HOLDER, "referral", category, found)
                and oracle_sees(sender, HOLDER, "referral", category, found)
                and oracle_sees(receiver, sender, "referral", category, found))

    assert decision.permitted == {c for c in shared if passes(c)}
    assert set(decision.consent_ids) <= {c.id for c in found}


def test_the_query_loads_exactly_the_consents_in_force_at_the_instant(make, app):
    """The engine's queries filter by time in SQL: the consents they load at AT are those the
    oracle holds in force, a microsecond either side of each boundary, on both databases."""
    organizations = [make.organization(name=f"Org {n}") for n in range(4)]
    ids = [o.id for o in organizations]

    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(data=st.data())
    def check(data):
        family = make.family(organizations[0])  # each example a family of its own
        stored = {}
        for c in data.draw(consents(ids)):
            recorded = make.consent(
                family, [o for o in organizations if o.id in c.parties],
                purposes=c.purposes, categories=c.categories, effective_at=c.effective_at,
                expires_at=c.expires_at, revoked_at=c.revoked_at)
            stored[recorded.id] = c
        in_force = {i for i, c in stored.items() if oracle_in_force(c)}
        with app.app_context():
            for actor in ids:
                for author in set(ids) - {actor}:
                    loaded = policy.consents_in_force(
                        family_id=family.id, actor_organization_id=actor,
                        author_organization_id=author, at=AT)
                    assert {t.id for t in loaded} == {
                        i for i in in_force if {actor, author} <= stored[i].parties}
            (terms,) = policy.families_consents_in_force([family.id], at=AT).values()
            assert {(t.id, parties) for t, parties in terms} == {
                (i, stored[i].parties) for i in in_force}

    check()
