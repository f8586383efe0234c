"""Two revocations at once revoke once; a backdated consent rewrites no refusal already on the
trail."""

import threading
from datetime import timedelta

import pytest

from core import time as clock
from tests.conftest import Factory, audit_events, bearer


@pytest.mark.no_db
def test_two_revocations_at_once_revoke_once(served):
    """Concurrent revocations by both parties: both 200, one revoked_at, one reason kept,
    exactly one `revoke` event that changed it (the other `already_revoked`)."""
    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer")
    make = Factory(served)
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    family = make.family(clinic)
    consent = make.consent(family, [clinic, provider])
    heads = [bearer(make.token(clinic)), bearer(make.token(provider))]
    answers, start = [None, None], threading.Barrier(2)

    def go(n):
        start.wait()
        answers[n] = served.test_client().post(
            f"/api/v1/consents/{consent.id}/revoke", headers=heads[n],
            json={"reason": f"reason {n}", "requested_by": "organization"})

    threads = [threading.Thread(target=go, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json["revoked_at"] == answers[1].json["revoked_at"]
    from audit.sealer import seal_batches
    from core.db import db
    seal_batches(db.engine)
    db.session.rollback()
    events = [e for e in audit_events(action="revoke") if e.family_id == family.id]
    assert sorted(e.reason for e in events) == ["already_revoked", "requested_by_organization"]


def test_a_backdated_consent_does_not_rewrite_a_refusal_already_on_the_trail(app, client, make):
    """effective_at in the past (a paper form signed earlier, recorded now) is accepted; the
    engine decides at the moment of each look, so a look refused before the recording stays a
    refusal on the trail, and the consent keeps its `recorded_at`."""
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    family = make.family(clinic)
    provider_h = bearer(make.token(provider))
    assert client.get(f"/api/v1/families/{family.id}", headers=provider_h).status_code == 404
    now = clock.now()
    signed = now - timedelta(days=3)
    z = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    answer = client.post(f"/api/v1/families/{family.id}/consents",
                         headers=bearer(make.token(clinic)), json={
        "grantor": {"caregiver_id": str(family.caregivers[0].id), "legal_authority": "parent"},
        "organization_ids": [str(clinic.id), str(provider.id)], "purposes": ["referral"],
        "categories": ["identity"], "effective_at": z(signed), "signed_at": z(signed),
        "expires_at": z(signed + timedelta(days=30)), "method": "written",
        "explained_in_language": "en", "interpreter_used": False,
        "revocation_rights_explained": True})
    assert answer.status_code == 201
    assert answer.json["recorded_at"] > answer.json["effective_at"]
    with app.app_context():
        refusals = [e for e in audit_events(outcome="deny") if e.family_id == family.id]
    assert refusals and refusals[0].organization_id == provider.id
