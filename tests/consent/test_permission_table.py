"""Who sees what: the engine and the family read, for every situation and every category."""

from datetime import timedelta

import pytest

from consent import policy
from consent.categories import CATEGORIES, FAMILY_FIELDS
from core import time as clock
from core.db import db
from families.models import Family
from tests.conftest import audit_events, bearer

GRANTED = ("identity", "contact", "referral_reason", "screening")
NOW = clock.now().replace(microsecond=0)

#: situation -> (consent to record for the provider, or None; categories the provider sees)
SITUATIONS = {
    "custodian": (None, set(CATEGORIES)),
    "consented party": ({}, set(GRANTED)),
    "party of an expired consent": ({"effective_at": NOW - timedelta(days=30),
                                     "expires_in_days": 10}, set()),
    "party of a revoked consent": ({"revoked": True}, set()),
    "party of a consent not yet effective": ({"effective_at": NOW + timedelta(days=2)}, set()),
    "party consented for another purpose": ({"purposes": ("treatment",)}, set()),
    "party consented for some categories": ({"categories": ("identity",)}, {"identity"}),
    "stranger": (None, set()),
}


@pytest.fixture
def network(make):
    clinic = make.organization(name="Washtenaw Pediatrics", type="pediatric_primary_care")
    provider = make.organization(name="Riverbend IMH")
    stranger = make.organization(name="Elsewhere Agency", type="community_other")
    family = make.family(clinic)
    return clinic, provider, stranger, family


def _actor_and_consent(make, network, situation):
    clinic, provider, stranger, family = network
    consent, _ = SITUATIONS[situation]
    if consent is not None:
        options = {"categories": GRANTED, "purposes": ("referral", "care_coordination"),
                   **consent}
        make.consent(family, [clinic, provider], **options)
    return {"custodian": clinic, "stranger": stranger}.get(situation, provider)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_the_engine_for_every_situation_and_category(app, make, network, situation, category):
    clock.freeze(NOW)
    actor = _actor_and_consent(make, network, situation)
    family = network[3]
    with app.app_context():
        decision = policy.decide(actor_organization_id=actor.id,
                                 family=db.session.get(Family, family.id),
                                 purpose="referral", categories=[category], at=NOW)
    expected = category in SITUATIONS[situation][1]
    assert decision.decision == ("permit" if expected else "deny")
    assert (category in decision.permitted) is expected


def _visible_fields(document):
    return {name for name in FAMILY_FIELDS if name in document} | (
        {f"caregivers.{f}" for c in document.get("caregivers", []) for f in c})


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_reading_the_family_for_every_situation(app, client, make, network, situation):
    clock.freeze(NOW)
    actor = _actor_and_consent(make, network, situation)
    family = network[3]
    answer = client.get(f"/api/v1/families/{family.id}?purpose=referral",
                        headers=bearer(make.token(actor, ["families:read"])))
    seen = SITUATIONS[situation][1] & {"identity", "contact"}
    if not seen:
        assert answer.status_code == 404
        assert answer.json["type"] == "/problems/not-found"
        with app.app_context():
            [event] = audit_events(organization_id=actor.id, resource_type="family")
            assert (event.action, event.outcome) == ("read", "deny")
            assert event.family_id == family.id
        return
    assert answer.status_code == 200
    document = answer.json
    assert document["redacted"] == sorted({"identity", "contact"} - seen)
    expected_fields = {name for name, category in FAMILY_FIELDS.items()
                       if isinstance(category, str) and category in seen}
    assert {name for name in FAMILY_FIELDS if name in document and name != "caregivers"} \
        == expected_fields
    shown = {f for f, category in FAMILY_FIELDS["caregivers"].items() if category in seen}
    # Listed only when something of them is shown: ids alone would count the household.
    assert len(document["caregivers"]) == (len(family.caregivers) if shown else 0)
    for caregiver in document["caregivers"]:
        assert set(caregiver) == {"id"} | shown
    with app.app_context():
        [event] = audit_events(organization_id=actor.id, resource_type="family", action="read")
        assert (event.outcome, event.purpose) == ("permit", "referral")
        assert set(event.categories) == seen


def test_several_consents_combine_and_each_one_relied_on_is_named(app, make, network):
    clinic, provider, _, family = network
    first = make.consent(family, [clinic, provider], categories=("identity",))
    second = make.consent(family, [clinic, provider], categories=("contact", "screening"))
    make.consent(family, [clinic, provider], categories=("identity",))  # adds nothing new
    with app.app_context():
        decision = policy.decide(actor_organization_id=provider.id,
                                 family=db.session.get(Family, family.id), purpose="referral",
                                 categories=["identity", "contact", "health"], at=clock.now())
    assert decision.permitted == {"identity", "contact"}
    assert decision.consent_ids == (first.id, second.id)
    assert (decision.decision, decision.reason) == ("deny", "partial_consent")


def test_a_consent_must_name_both_the_reader_and_the_author(app, make, network):
    clinic, provider, stranger, family = network
    # The provider and a third agency consent to share; the custodian is not named.
    make.consent(family, [provider, stranger])
    with app.app_context():
        decision = policy.decide(actor_organization_id=provider.id,
                                 family=db.session.get(Family, family.id), purpose="referral",
                                 categories=["identity"], at=clock.now())
        # ...but what the third agency authored, the provider may see.
        authored = policy.decide(actor_organization_id=provider.id,
                                 family=db.session.get(Family, family.id), purpose="referral",
                                 categories=["identity"], author_organization_id=stranger.id,
                                 at=clock.now())
    assert decision.decision == "deny"
    assert authored.decision == "permit"


def test_the_author_sees_its_own_information(app, make, network):
    _, provider, _, family = network
    with app.app_context():
        decision = policy.decide(actor_organization_id=provider.id,
                                 family=db.session.get(Family, family.id),
                                 purpose="care_coordination", categories=["coordination_notes"],
                                 author_organization_id=provider.id, at=clock.now())
    assert (decision.decision, decision.reason, decision.consent_ids) == ("permit", "author", ())


def test_the_clock_crosses_start_expiry_and_revocation(app, client, make, network):
    clinic, provider, _, family = network
    start = NOW + timedelta(hours=1)
    consent = make.consent(family, [clinic, provider], effective_at=start, expires_in_days=30)
    token = make.token(provider, ["families:read", "consent:write"], lifetime=90 * 86400)
    read = lambda: client.get(f"/api/v1/families/{family.id}?purpose=referral",  # noqa: E731
                              headers=bearer(token)).status_code

    clock.freeze(start - timedelta(microseconds=1))
    assert read() == 404
    clock.freeze(start)
    assert read() == 200
    clock.freeze(start + timedelta(days=30) - timedelta(microseconds=1))
    assert read() == 200
    clock.freeze(start + timedelta(days=30))
    assert read() == 404

    clock.freeze(start + timedelta(days=1))
    assert read() == 200
    revoked = client.post(f"/api/v1/consents/{consent.id}/revoke",
                          json={"reason": "The family moved to another county"},
                          headers=bearer(token))
    assert revoked.status_code == 200
    assert revoked.json["status"] == "revoked"
    assert read() == 404  # at once, at the same instant
    clock.freeze(start + timedelta(days=2))
    assert read() == 404  # and forever after


def test_the_engine_runs_one_query(app, make, network):
    """Not a timing test: it counts the queries, which is what keeps the engine cheap."""
    from sqlalchemy import event

    clinic, provider, stranger, family = network
    for n in range(20):
        make.consent(family, [clinic, provider] if n % 2 else [clinic, stranger],
                     categories=("identity",) if n % 3 else ("contact",))
    statements = []
    with app.app_context():
        loaded = db.session.get(Family, family.id)
        engine = db.engine

        def count(*args):
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            decision = policy.decide(actor_organization_id=provider.id, family=loaded,
                                     purpose="referral", categories=["identity", "contact"],
                                     at=clock.now())
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert decision.decision == "permit"
    assert len(statements) == 1


@pytest.mark.parametrize("statement,message", [
    ("UPDATE consents SET categories = '[\"health\"]'", "immutable"),
    ("UPDATE consents SET method = 'written'", "immutable"),
    ("DELETE FROM consents", "never deleted"),
    ("UPDATE consent_parties SET position = 5", "immutable"),
    ("DELETE FROM consent_parties", "immutable"),
])
def test_the_database_refuses_to_edit_a_consent(app, make, network, statement, message):
    import sqlalchemy as sa

    clinic, provider, _, family = network
    make.consent(family, [clinic, provider])
    with app.app_context(), pytest.raises(sa.exc.DatabaseError, match=message), \
            db.session.begin_nested():
        db.session.execute(sa.text(statement))


def test_a_revoked_consent_is_never_reactivated_even_in_the_database(app, make, network):
    import sqlalchemy as sa

    clinic, provider, _, family = network
    make.consent(family, [clinic, provider], revoked=True)
    with app.app_context(), pytest.raises(sa.exc.DatabaseError, match="never changes"), \
            db.session.begin_nested():
        db.session.execute(sa.text("UPDATE consents SET revoked_at = NULL"))
