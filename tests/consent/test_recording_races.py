"""Recording a consent against a revocation at the same moment (PostgreSQL)."""

import threading
import time
from datetime import timedelta

import pytest

from core import time as clock
from tests.conftest import Factory, bearer


def _skip_on_sqlite(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the two requests never overlap")


def _rfc(instant):
    return instant.isoformat().replace("+00:00", "Z")


@pytest.mark.no_db
def test_a_consent_recorded_by_a_partner_whose_identity_consent_was_revoked_meanwhile_is_404(
        served):
    """Whether the recorder may see the family's `identity` is decided once it holds the
    family, at that instant: a recording that waited for the revocation of the partner's only
    consent is refused as a stranger's (else its 201 or 422 on the grantor would tell who has
    legal authority, the identity fact the check guards)."""
    from consent.service import consent_revoked

    _skip_on_sqlite(served)
    make = Factory(served)
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    family = make.family(clinic)
    only = make.consent(family, [clinic, provider], categories=("identity", "contact"))
    clinic_headers = bearer(make.token(clinic))
    provider_headers = bearer(make.token(provider))
    revoking = threading.Event()

    def hold_the_revocation(sender, **_):
        revoking.set()
        time.sleep(0.6)  # the family row is held; the recording arrives meanwhile

    consent_revoked.connect(hold_the_revocation)
    answers = {}

    def revoke_it():
        answers["revoke"] = served.test_client().post(
            f"/api/v1/consents/{only.id}/revoke", headers=clinic_headers,
            json={"reason": "The family withdrew it."})

    signed = clock.now() - timedelta(hours=1)
    body = {"grantor": {"caregiver_id": str(family.caregivers[0].id),
                        "legal_authority": "parent"},
            "organization_ids": [str(provider.id), str(clinic.id)],
            "purposes": ["referral"], "categories": ["identity"],
            "effective_at": _rfc(signed), "expires_at": _rfc(signed + timedelta(days=90)),
            "method": "written", "signed_at": _rfc(signed), "explained_in_language": "en",
            "interpreter_used": False, "revocation_rights_explained": True}
    thread = threading.Thread(target=revoke_it)
    try:
        thread.start()
        assert revoking.wait(10)
        answers["record"] = served.test_client().post(
            f"/api/v1/families/{family.id}/consents", json=body, headers=provider_headers)
        thread.join(30)
    finally:
        consent_revoked.disconnect(hold_the_revocation)

    assert answers["revoke"].status_code == 200, answers["revoke"].json
    # After the revocation the provider may see nothing of the family: as a stranger, 404.
    alone = served.test_client().post(f"/api/v1/families/{family.id}/consents", json=body,
                                      headers=provider_headers)
    assert alone.status_code == 404
    assert answers["record"].status_code == 404, answers["record"].json
