"""A receiver's hold whose row the expiry sweep holds while a revocation holds the family:
the sweep skips the family and lets the row go, and the revocation, which waits for the row,
relabels the hold `consent_ended` in its own transaction (PostgreSQL, real connections, the
real sweep and the real revocation)."""

import threading

import pytest

import consent.service
import referrals.service
from core.db import db
from tests.conftest import Factory
from tests.race_support import in_thread, skip_on_sqlite
from tests.referrals.conftest import FULL, accepted, move, network


@pytest.mark.no_db
def test_a_receiver_s_hold_the_sweep_held_during_the_revocation_becomes_consent_ended(
        served, monkeypatch):
    """The provider put its accepted referral on hold (waitlist) while the consent covered
    it. The sweep takes the referral's row; the clinic's revocation holds the family; the
    sweep skips the family; the revocation waits for the row and relabels the hold. A
    corrected consent follows: the timeline says once that the consent ended."""
    skip_on_sqlite(served)
    make = Factory(served)
    net = network(make)
    revoked = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    client = served.test_client()
    rid, etag = accepted(client, net)
    assert move(client, rid, net.as_provider, etag, status="on_hold",
                reason="waitlist").status_code == 200

    revocation_holds, sweep_skipped = threading.Event(), threading.Event()
    real_share, real_lock = referrals.service.share_families, consent.service.lock_family

    def sweep_share(family_ids, **kw):  # the sweep holds its referrals' rows already
        if threading.current_thread().name == "sweep":
            assert revocation_holds.wait(20)
            shared = real_share(family_ids, **kw)  # skips the family the revocation holds
            sweep_skipped.set()
            return shared
        return real_share(family_ids, **kw)

    def revocation_lock(family_id):
        real_lock(family_id)
        if threading.current_thread().name == "revoke":
            revocation_holds.set()
            assert sweep_skipped.wait(20)

    monkeypatch.setattr(referrals.service, "share_families", sweep_share)
    monkeypatch.setattr(consent.service, "lock_family", revocation_lock)

    def sweep():
        with served.app_context():
            held = referrals.service.hold_unsupported()
            db.session.commit()
            return held

    answers = {}
    sweeper = in_thread(sweep, answers, "sweep")
    revoker = in_thread(lambda: served.test_client().post(
        f"/api/v1/consents/{revoked.id}/revoke", headers=net.as_clinic,
        json={"reason": "Corrected: a new consent follows."}), answers, "revoke")
    revoker.join(30)  # it waited for the sweep's row, once the sweep let it go
    sweeper.join(30)
    assert answers["revoke"].status_code == 200, answers["revoke"].json
    assert answers["sweep"][0] == 0

    monkeypatch.undo()
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)  # the new one
    assert served.test_cli_runner().invoke(args=["referrals", "hold-expired"]).exit_code == 0
    now = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json
    steps = client.get(f"/api/v1/referrals/{rid}/events", headers=net.as_provider).json["items"]
    ended = [step for step in steps if step.get("reason") == "consent_ended"]
    assert len(ended) == 1, (now["status"], now.get("status_reason"), now["consent_ids"],
                             str(revoked.id),
                             [(step["to_status"], step.get("reason")) for step in steps])
