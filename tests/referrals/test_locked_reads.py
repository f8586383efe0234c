"""A move that waited for its family answers with the referral and its family as they are
once it holds them (PostgreSQL)."""

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core import time as clock
from core.db import db
from families.models import Caregiver, Family
from tests.conftest import Factory, bearer
from tests.race_support import wait_until_blocked


@pytest.mark.no_db
def test_a_transition_that_waited_for_the_family_shows_it_as_it_is_now(served):
    """A change of the family committed while the move waited for it (a caregiver's new
    phone, do not contact) is in the move's answer: a locking read that waited would return
    only the locked rows as they are now, and the caregivers joined to them as they were."""
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
    rid, mother = sent.json["id"], family.caregivers[0]
    holding, answers = threading.Event(), {}

    def change_the_family():  # as the custodian's PATCH would: the row held, then changed
        with served.app_context():
            db.session.execute(sa.select(Family.id).where(Family.id == family.id)
                               .with_for_update())
            holding.set()
            wait_until_blocked(db.engine, 1)  # the move waits for the family
            db.session.execute(sa.update(Caregiver).where(Caregiver.id == mother.id)
                               .values(phone="+17345550199"))
            db.session.execute(sa.update(Family).where(Family.id == family.id)
                               .values(do_not_contact=True, contact_methods=[]))
            db.session.commit()

    def move_it():
        answers["move"] = served.test_client().post(
            f"/api/v1/referrals/{rid}/transitions", json={"status": "accepted"},
            headers={**as_provider, "If-Match": sent.headers["ETag"]})

    changer = threading.Thread(target=change_the_family)
    changer.start()
    assert holding.wait(10)
    mover = threading.Thread(target=move_it)
    mover.start()
    mover.join(30)
    changer.join(30)

    assert answers["move"].status_code == 200, answers["move"].json
    now = client.get(f"/api/v1/referrals/{rid}", headers=as_provider).json["family"]
    assert [c["phone"] for c in now["caregivers"]][0] == "+17345550199"
    assert now["contact_preferences"]["do_not_contact"] is True
    shown = answers["move"].json["family"]
    assert shown["contact_preferences"] == now["contact_preferences"]
    assert shown["caregivers"] == now["caregivers"]
