"""A look that waited for a change of its family answers from rows read once it shares the
family, never from rows read before the wait (PostgreSQL, real connections).

Each test pauses a real change request (a family PATCH, a move, a revocation) after it has
written its rows and while it holds the family, lets a look start and wait for the family's
share lock, then lets the change commit. The look then decides at the instant it holds the
lock (after the change), but renders rows its statement read before it waited.
"""

import threading

import pytest

import audit
from tests.conftest import Factory
from tests.race_support import in_thread, run_until_done_or_blocked, skip_on_sqlite
from tests.referrals.conftest import FULL, accepted, network

NEW_PHONE = "+17345550199"


class Paused:
    """Pause the request running in thread `name` when it records an event of `action`
    (its rows written and flushed, its family held), until `release()`."""

    def __init__(self, monkeypatch, action: str, name: str):
        self.reached, self.released = threading.Event(), threading.Event()
        record = audit.record

        def pausing(**event):
            if event.get("action") == action and threading.current_thread().name == name:
                self.reached.set()
                self.released.wait(20)
            return record(**event)

        monkeypatch.setattr(audit, "record", pausing)

    def release(self):
        self.released.set()


def _patch_body(family, *, phone, do_not_contact):
    mother, grandmother = family.caregivers[0], family.caregivers[1]
    return {
        "caregivers": [
            {"id": str(mother.id), "given_name": mother.given_name,
             "family_name": mother.family_name, "relationship": "mother",
             "has_legal_authority": True, "phone": phone, "email": mother.email},
            {"id": str(grandmother.id), "given_name": grandmother.given_name,
             "family_name": grandmother.family_name, "relationship": "grandparent",
             "has_legal_authority": False, "phone": None, "email": None}],
        "contact_preferences": {"do_not_contact": do_not_contact,
                                "methods": [] if do_not_contact else ["phone", "text"]}}


def _look_during_patch(served, monkeypatch, net, url, headers):
    """Run `GET url` while the custodian's PATCH (new phone, do not contact) holds the
    family; returns the look's answer."""
    paused = Paused(monkeypatch, "update", "patch")
    answers = {}
    patcher = in_thread(lambda: served.test_client().patch(
        f"/api/v1/families/{net.family.id}", headers=net.as_clinic,
        json=_patch_body(net.family, phone=NEW_PHONE, do_not_contact=True)), answers, "patch")
    assert paused.reached.wait(20)
    looking, looked = run_until_done_or_blocked(
        served, lambda: served.test_client().get(url, headers=headers), blocked_backends=1)
    paused.release()
    patcher.join(30)
    looking.join(30)
    assert answers["patch"].status_code == 200, answers["patch"].json
    return looked["value"]


@pytest.mark.no_db
def test_a_family_read_that_waited_for_a_patch_answers_the_record_as_patched(
        served, monkeypatch):
    """The custodian's second user reads the record while the first user's PATCH (the
    mother's new phone, do not contact) holds it: the read waits, then answers the record as
    patched, caregivers included, with the ETag of that version (a PATCH sent with it does
    not undo the first)."""
    skip_on_sqlite(served)
    net = network(Factory(served))
    client = served.test_client()
    before = client.get(f"/api/v1/families/{net.family.id}", headers=net.as_clinic)
    look = _look_during_patch(served, monkeypatch, net, f"/api/v1/families/{net.family.id}",
                              net.as_clinic)
    now = client.get(f"/api/v1/families/{net.family.id}", headers=net.as_clinic)
    assert look.status_code == 200, look.json

    def version(answer):
        return (answer.headers["ETag"], answer.json["contact_preferences"]["do_not_contact"],
                [c["phone"] for c in answer.json["caregivers"]])

    assert version(look) in (version(before), version(now)), (
        f"look {version(look)}; before {version(before)}; now {version(now)}")


@pytest.mark.no_db
def test_a_referral_read_that_waited_for_a_patch_shows_the_family_as_patched(served, monkeypatch):
    """The provider reads its referral (the family under consent) while the custodian's
    PATCH holds the family: the family is answered as patched, its caregivers too."""
    skip_on_sqlite(served)
    make = Factory(served)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    rid, _ = accepted(served.test_client(), net)
    look = _look_during_patch(served, monkeypatch, net, f"/api/v1/referrals/{rid}",
                              net.as_provider)
    assert look.status_code == 200, look.json
    family = look.json["family"]
    shown = (family["contact_preferences"]["do_not_contact"], family["caregivers"][0]["phone"])
    assert shown in ((False, "+17345550101"), (True, NEW_PHONE)), f"torn: {shown}"


@pytest.mark.no_db
@pytest.mark.parametrize("look", ["read", "list"])
def test_a_referral_look_that_waited_for_a_move_answers_the_referral_as_moved(
        served, monkeypatch, look):
    """The referrer reads its referral (or lists its referrals) while the provider's move
    (accepted -> in_progress) holds the family and the referral: the look waits, decides
    after the move, and answers the referral as moved (for a read, with its new ETag)."""
    skip_on_sqlite(served)
    make = Factory(served)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    client = served.test_client()
    rid, etag = accepted(client, net)
    paused = Paused(monkeypatch, "transition", "move")
    answers = {}
    mover = in_thread(lambda: served.test_client().post(
        f"/api/v1/referrals/{rid}/transitions", headers={**net.as_provider, "If-Match": etag},
        json={"status": "in_progress", "business_status": "contact_attempted"}),
        answers, "move")
    assert paused.reached.wait(20)
    url = {"read": f"/api/v1/referrals/{rid}", "list": "/api/v1/referrals?direction=sent"}[look]
    looking, looked = run_until_done_or_blocked(
        served, lambda: served.test_client().get(url, headers=net.as_clinic),
        blocked_backends=1)
    waited = "value" not in looked  # not answered yet: it waits for the family
    paused.release()
    mover.join(30)
    looking.join(30)
    assert answers["move"].status_code == 200, answers["move"].json
    answer = looked["value"]
    assert waited and answer.status_code == 200, answer.json
    shown = next(item for item in answer.json.get("items", [answer.json]) if item["id"] == rid)
    assert shown["status"] == "in_progress", (shown["status"], answer.headers.get("ETag"),
                                              answers["move"].headers["ETag"])


@pytest.mark.no_db
def test_a_consent_read_that_waited_for_its_revocation_answers_it_revoked(served, monkeypatch):
    """The provider reads the consent while the clinic's revocation of it holds the family:
    the read waits, withholds the contact facts the consent no longer covers, and answers the
    consent revoked, with its `revoked_at` and the version the revocation made."""
    skip_on_sqlite(served)
    make = Factory(served)
    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    paused = Paused(monkeypatch, "revoke", "revoke")
    answers = {}
    revoker = in_thread(lambda: served.test_client().post(
        f"/api/v1/consents/{consent.id}/revoke", headers=net.as_clinic,
        json={"reason": "The family withdrew it."}), answers, "revoke")
    assert paused.reached.wait(20)
    looking, looked = run_until_done_or_blocked(
        served, lambda: served.test_client().get(f"/api/v1/consents/{consent.id}",
                                                 headers=net.as_provider),
        blocked_backends=1)
    paused.release()
    revoker.join(30)
    looking.join(30)
    assert answers["revoke"].status_code == 200, answers["revoke"].json
    look = looked["value"]
    assert look.status_code == 200, look.json
    shown = (look.json["status"], look.json["revoked_at"], look.headers.get("ETag"),
             sorted(look.json["redacted"]))
    assert shown[:2] == ("revoked", answers["revoke"].json["revoked_at"]), shown
