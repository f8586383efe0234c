"""Behaviour of the decision engine (consent/policy.py) that a mutation review found no test
pinned down: each test here failed against one hand-made mutant of the engine and passes on
the engine as written (see the docstrings for which)."""

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from consent import policy
from tests.conftest import audit_events
from tests.referrals.conftest import network


def _consent_reads(app, consent_id, organization_id):
    with app.app_context():
        return [(e.purpose, sorted(e.categories), sorted(e.consent_ids))
                for e in audit_events(action="read", resource_type="consent",
                                      resource_id=str(consent_id))
                if e.organization_id == organization_id]


def test_a_consent_read_accounts_one_disclosure_when_one_purpose_shows_all_its_facts(
        app, client, make):
    """A consent record's family facts (the grantor's legal authority, `identity`; the
    language it was explained in, `contact`) pass to a named organization under the purpose
    that shows the most of them, and under another only when it shows more: here
    `care_coordination` shows both, so the `referral` consent, which shows only `identity`,
    adds nothing and is no second disclosure (mutants: sorting the purposes fewest first;
    choosing every purpose that permits something)."""
    net = network(make)
    narrow = make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                          categories=("identity",))
    wide = make.consent(net.family, [net.clinic, net.provider],
                        purposes=("care_coordination",), categories=("identity", "contact"))

    read = client.get(f"/api/v1/consents/{narrow.id}", headers=net.as_provider)

    assert read.status_code == 200, read.json
    assert read.json["explained_in_language"] == "es"
    assert read.json["grantor"]["legal_authority"] == "parent"
    assert read.json["redacted"] == []
    assert _consent_reads(app, narrow.id, net.provider.id) == [
        ("care_coordination", ["contact", "identity"], [str(wide.id)])]


def test_referral_side_names_no_receiver_for_a_referral_never_sent():
    """`referral_side` itself: the receiver of a draft (never sent) is no party to it, the
    sender is, and so is the receiver once it was sent. (The SQL party clause filters the
    same way before every caller today; this pins the function's own contract, so a caller
    that asks it first cannot let a receiver see a draft. Mutant: the `sent_at` condition
    dropped.)"""
    sender, receiver, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    draft = SimpleNamespace(from_organization_id=sender, to_organization_id=receiver,
                            sent_at=None)
    sent = SimpleNamespace(from_organization_id=sender, to_organization_id=receiver,
                           sent_at=object())

    assert policy.referral_side(actor_organization_id=receiver, referral=draft) is None
    assert policy.referral_side(actor_organization_id=sender, referral=draft) == "sender"
    assert policy.referral_side(actor_organization_id=receiver, referral=sent) == "receiver"
    assert policy.referral_side(actor_organization_id=other, referral=sent) is None


def test_a_send_refused_for_the_relaying_sender_says_why_not_the_receiver_s_reason(
        app, make):
    """A sender that does not hold the family (a relay) sends it to a receiver the custodian
    shares `identity` with: the receiver alone would see it (its reason: `consent`), but no
    consent names the relay, so nothing passes, and the decision's reason is the send's own,
    `no_consent`, not the receiver's (mutant: the receiver's reason kept whatever was
    withheld). With a consent naming the relay and the receiver but not the custodian it is
    still refused; with the relay named by the custodian's consent too, it passes."""
    from core import time as clock

    net = network(make)
    relay = make.organization(name="Northside Home Visiting", type="home_visiting")
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=("identity",))

    def decision():
        with app.app_context():
            return policy.referral_send_decision(
                family=net.family, sender_organization_id=relay.id,
                receiver_organization_id=net.provider.id, shared_categories={"identity"},
                at=clock.now())

    refused = decision()
    assert (refused.permitted, refused.withheld) == (frozenset(), ["identity"])
    assert (refused.decision, refused.reason) == ("deny", "no_consent")

    make.consent(net.family, [relay, net.provider], purposes=("referral",),
                 categories=("identity",))
    still = decision()  # the relay does not see the family record itself
    assert (still.decision, still.reason) == ("deny", "no_consent")

    all_three = make.consent(net.family, [net.clinic, relay, net.provider],
                             purposes=("referral",), categories=("identity",))
    passed = decision()
    assert (passed.decision, passed.reason, passed.permitted) == (
        "permit", "consent", frozenset({"identity"}))
    assert str(all_three.id) in {str(c) for c in passed.consent_ids}


def test_combined_decisions_without_consent_keep_the_reason_of_what_was_asked():
    """`combine` of decisions that rest on no consent and withhold nothing keeps the reason
    of the one that asked something (here the custodian receiving its own family record
    from a relay, `custodian`), not the empty one's (`nothing_asked`) nor a made-up one
    (mutant: `party` always). Pure: the viewer is handed its consents (none)."""
    custodian, relay = uuid.uuid4(), uuid.uuid4()
    family = SimpleNamespace(id=uuid.uuid4(), custodian_organization_id=custodian)
    viewer = policy.Viewer(actor_organization_id=custodian, family=family,
                           at=datetime(2026, 12, 7, tzinfo=UTC), terms=[])

    decision = policy.referral_receiver_decision(
        viewer, sender_organization_id=relay, shared_categories={"identity", "contact"})

    assert (decision.decision, decision.reason, decision.consent_ids) == (
        "permit", "custodian", ())
    assert decision.permitted == {"identity", "contact"}
    assert policy.combine().reason == "party"
