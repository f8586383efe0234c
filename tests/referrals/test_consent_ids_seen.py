"""A referral's `consent_ids` name only consents the viewer may know exist."""

from tests.conftest import bearer
from tests.referrals.conftest import LONG, send


def test_a_forwarded_referral_names_to_each_side_only_the_consents_naming_it(
        client, make, net):
    """The clinic holds the family; Early On sends it on to the provider, resting on a consent
    between the clinic and each side and one between the two sides. Each side read, in
    `consent_ids`, the consent between the clinic and the other side, which does not name it
    and which `GET /consents/{id}` answers 404 for ("it may not know it exists"). The clinic,
    the custodian, knows them all."""
    early_on = make.organization(name="Early On", type="early_intervention",
                                 accepting_referrals=True)
    as_early_on = bearer(make.token(early_on, lifetime=LONG))
    clinic_early_on = make.consent(net.family, [net.clinic, early_on])
    clinic_provider = make.consent(net.family, [net.clinic, net.provider],
                                   categories=("identity", "contact"))
    sides = make.consent(net.family, [early_on, net.provider],
                         categories=("identity", "contact", "referral_reason"),
                         recorder=early_on)
    sent = send(client, net, headers=as_early_on)
    assert sent.status_code == 201, sent.json

    def named(headers):
        return set(client.get(f"/api/v1/referrals/{sent.json['id']}",
                              headers=headers).json["consent_ids"])

    assert named(as_early_on) <= {str(clinic_early_on.id), str(sides.id)}
    assert str(sides.id) in named(as_early_on)
    assert named(net.as_provider) <= {str(clinic_provider.id), str(sides.id)}
    assert str(clinic_provider.id) in named(net.as_provider)
    for headers, foreign in ((as_early_on, clinic_provider), (net.as_provider, clinic_early_on)):
        assert client.get(f"/api/v1/consents/{foreign.id}", headers=headers).status_code == 404
    # A list page names them as a read does.
    listed = client.get("/api/v1/referrals?direction=received", headers=net.as_provider)
    assert set(listed.json["items"][0]["consent_ids"]) == named(net.as_provider)


def test_a_forwarded_send_refused_says_which_consent_it_lacks(client, make, net):
    """Early On, between which and the provider a consent covers `contact`, sends the clinic's
    family on: refused, for the provider may see only the clinic's `identity`. The answer
    said no consent let `contact` pass "from the sender to the receiver", which one did (a
    review): it names the pair that lacks it, the receiver and the custodian."""
    early_on = make.organization(name="Early On", type="early_intervention",
                                 accepting_referrals=True)
    as_early_on = bearer(make.token(early_on, lifetime=LONG))
    make.consent(net.family, [net.clinic, early_on], categories=("identity", "contact"))
    make.consent(net.family, [net.clinic, net.provider], categories=("identity",))
    make.consent(net.family, [early_on, net.provider],
                 categories=("identity", "contact", "referral_reason"), recorder=early_on)

    refused = send(client, net, headers=as_early_on,
                   shared_categories=["identity", "contact", "referral_reason"])

    assert refused.status_code == 403, refused.json
    assert refused.json["missing_categories"] == ["contact"]
    assert "the receiver and the family's custodian" in refused.json["detail"]
    own = send(client, net, shared_categories=["identity", "health"])
    assert own.status_code == 403, own.json
    assert "custodian" not in own.json["detail"]
