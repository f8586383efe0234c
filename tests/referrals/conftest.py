"""A referral network: a pediatric clinic holding a family, a provider, and a stranger."""

from types import SimpleNamespace

import pytest

from tests.conftest import bearer

#: What the family agreed the clinic and the provider may share, for referral and feedback.
LONG = 400 * 86400
FULL = ("identity", "contact", "referral_reason", "service_status", "coordination_notes")


@pytest.fixture
def net(make):
    return network(make)


@pytest.fixture
def consented(make, net):
    """The network, with a consent between the clinic and the provider covering FULL."""
    net.consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    return net


def network(make) -> SimpleNamespace:
    """The clinic holding a family, the provider and a stranger, with their tokens."""
    clinic = make.organization(name="Washtenaw Pediatrics", type="pediatric_primary_care")
    provider = make.organization(name="Riverbend IMH", accepting_referrals=True)
    stranger = make.organization(name="Elsewhere IMH", accepting_referrals=True)
    family = make.family(clinic)
    return SimpleNamespace(
        clinic=clinic, provider=provider, stranger=stranger, family=family,
        # Tokens that outlive the clocks the tests move across consent expiry.
        as_clinic=bearer(make.token(clinic, lifetime=LONG)),
        as_provider=bearer(make.token(provider, lifetime=LONG)),
        as_stranger=bearer(make.token(stranger, lifetime=LONG)))


def referral_body(net, **overrides) -> dict:
    body = {"family_id": str(net.family.id), "to_organization_id": str(net.provider.id),
            "reasons": ["feeding_concerns", "caregiver_depression"],
            "reason_detail": "Mother reports low mood since the birth.",
            "urgency": "routine", "shared_categories": ["identity", "contact",
                                                        "referral_reason"]}
    body.update(overrides)
    return body


def send(client, net, headers=None, **overrides):
    return client.post("/api/v1/referrals", json=referral_body(net, **overrides),
                       headers=headers or net.as_clinic)


def move(client, referral_id, headers, etag, **body):
    return client.post(f"/api/v1/referrals/{referral_id}/transitions", json=body,
                       headers={**headers, "If-Match": etag})


def accepted(client, net, **overrides) -> tuple[str, str]:
    """A referral the clinic sent and the provider accepted: its id and its ETag."""
    sent = send(client, net, **overrides)
    rid = sent.json["id"]
    moved = move(client, rid, net.as_provider, sent.headers["ETag"], status="accepted")
    return rid, moved.headers["ETag"]
