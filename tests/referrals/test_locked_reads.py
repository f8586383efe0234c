"""A move that waited for its referral answers with the referral and its family as they are
once it holds the row (PostgreSQL)."""

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core import time as clock
from core.db import db
from referrals.models import Referral
from tests.conftest import Factory, bearer


@pytest.mark.no_db
def test_a_transition_that_waited_for_the_referral_shows_the_family_as_it_is_now(served):
    """A family PATCH committed while the move waited (a caregiver's new phone, do not
    contact) is in the move's answer: a locking read that waited would return only the locked
    row as it is now, and the family joined to it as it was before the wait."""
    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the move never waits")
    make = Factory(served)
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider", accepting_referrals=True)
    family = make.family(clinic)
    make.consent(family, [clinic, provider], effective_at=clock.now() - timedelta(days=1))
    as_clinic, as_provider = bearer(make.token(clinic)), bearer(make.token(provider))
    client = served.test_client()
    sent = client.post("/api/v1/referrals", headers=as_clinic, json={
        "family_id": str(family.id), "to_organization_id": str(provider.id),
        "reasons": ["feeding_concerns"], "urgency": "routine",
        "shared_categories": ["identity", "contact"]})
    assert sent.status_code == 201, sent.json
    rid = sent.json["id"]
    holding, answers = threading.Event(), {}

    def hold_the_referral():  # as another request moving it would
        with served.app_context():
            db.session.execute(sa.select(Referral.id).where(Referral.id == rid)
                               .with_for_update())
            holding.set()
            time.sleep(1.2)
            db.session.commit()

    def move_it():
        answers["move"] = served.test_client().post(
            f"/api/v1/referrals/{rid}/transitions", json={"status": "accepted"},
            headers={**as_provider, "If-Match": sent.headers["ETag"]})

    holder = threading.Thread(target=hold_the_referral)
    holder.start()
    assert holding.wait(10)
    mover = threading.Thread(target=move_it)
    mover.start()
    time.sleep(0.3)  # the move is waiting for the referral's row
    mother = family.caregivers[0]
    patched = client.patch(f"/api/v1/families/{family.id}", headers=as_clinic, json={
        "caregivers": [{"id": str(mother.id), "given_name": mother.given_name,
                        "family_name": mother.family_name, "relationship": "mother",
                        "has_legal_authority": True, "phone": "+17345550199"}],
        "contact_preferences": {"do_not_contact": True, "methods": []}})
    assert patched.status_code == 200, patched.json
    mover.join(30)
    holder.join(30)

    assert answers["move"].status_code == 200, answers["move"].json
    now = client.get(f"/api/v1/referrals/{rid}", headers=as_provider).json["family"]
    assert [c["phone"] for c in now["caregivers"]] == ["+17345550199"]
    shown = answers["move"].json["family"]
    assert shown["contact_preferences"] == now["contact_preferences"]
    assert shown["caregivers"] == now["caregivers"]
