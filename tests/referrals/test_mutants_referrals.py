"""Behaviour of referrals/service.py that a mutation review found no test pinned down: each
test here failed against one hand-made mutant of the service and passes on the service as
written (see the docstrings for which)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core import time as clock
from tests.referrals.conftest import accepted, move, send


def _ids(client, url, headers) -> list[str]:
    answer = client.get(url, headers=headers)
    assert answer.status_code == 200, answer.json
    return [r["id"] for r in answer.json["items"]]


def _local_midnight(app, day) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(app.config["TIME_ZONE"]))


def _accepted_with_part_c_at_noon(client, consented):
    """The clock frozen at today's noon, a Part C referral identified today and accepted: its
    id, ETag, the noon and the day its 45 days end."""
    start = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(start)
    rid, etag = accepted(client, consented, part_c={"identified_on": start.date().isoformat()})
    return rid, etag, start, (start + timedelta(days=45)).date()


def _documented_hold(client, consented, rid, etag, note):
    held = move(client, rid, consented.as_provider, etag, status="on_hold",
                reason="family_circumstances", note=note)
    assert held.status_code == 200, held.json
    return held


def _revoke_the_consent(client, consented):
    assert client.post(f"/api/v1/consents/{consented.consent.id}/revoke",
                       json={"reason": "The family asked."},
                       headers=consented.as_clinic).status_code == 200


def _sent_then_consent_revoked(client, consented):
    """A referral sent, not yet decided, and the consent it rests on revoked: its id and the
    receiver's read of it (which finds it held)."""
    rid = send(client, consented).json["id"]
    _revoke_the_consent(client, consented)
    return rid, client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider)


def test_a_documented_hold_on_the_due_day_itself_still_pauses_the_45_days(client, consented):
    """The due day is the last day of the 45, not past them (as `?overdue=true` judges it):
    a documented hold begun on it pauses the clock, and the days it lasted push the due day
    back (mutant: a pause only before the due day)."""
    rid, etag, start, due = _accepted_with_part_c_at_noon(client, consented)

    clock.freeze(start + timedelta(days=45))
    held = _documented_hold(client, consented, rid, etag, "The family is staying with relatives.")
    assert held.json["part_c"]["timeline_due_by"] == due.isoformat()
    assert held.json["part_c"]["timeline_paused_since"] is not None

    clock.freeze(start + timedelta(days=47))
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                   status="in_progress")
    assert resumed.status_code == 200, resumed.json
    assert resumed.json["part_c"]["timeline_due_by"] == (due + timedelta(days=2)).isoformat()
    assert resumed.json["part_c"]["timeline_paused_since"] is None


def test_a_referral_delivered_at_midnight_is_not_overdue_on_its_45th_day(
        app, client, consented):
    """Delivered at the very first instant of a day (local midnight) and never acknowledged:
    its 45 days end with the 45th day after, as a received one's do; it is on the receiver's
    overdue list from the next midnight, not on the 45th day (mutant: delivered at or before
    the first instant of the day 45 days back)."""
    delivered_on = clock.now().date() + timedelta(days=1)
    clock.freeze(_local_midnight(app, delivered_on))
    rid = send(client, consented, part_c={"identified_on": delivered_on.isoformat()}).json["id"]
    url = "/api/v1/referrals?overdue=true"

    clock.freeze(_local_midnight(app, delivered_on + timedelta(days=45)) + timedelta(hours=12))
    assert rid not in _ids(client, url, consented.as_provider)
    clock.freeze(_local_midnight(app, delivered_on + timedelta(days=46)))
    assert _ids(client, url, consented.as_provider) == [rid]


def test_a_list_names_the_ended_consents_a_referral_rests_on_as_a_single_read_does(
        client, consented):
    """Once the consent a referral was sent under is revoked, the receiver (named by it, not
    the family's custodian) still reads its id in `consent_ids`, in a list as in a single
    read: a list page knows the consents in force from its one query, and looks up the rest,
    those ended since (mutant: only the ones in force named)."""
    sent = send(client, consented)
    assert sent.status_code == 201, sent.json
    rid = sent.json["id"]
    revoked = client.post(f"/api/v1/consents/{consented.consent.id}/revoke",
                          json={"reason": "The mother withdrew it."},
                          headers=consented.as_clinic)
    assert revoked.status_code == 200, revoked.json

    single = client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider).json
    listed = client.get("/api/v1/referrals?direction=received",
                        headers=consented.as_provider).json["items"]

    assert single["status"] == "on_hold"
    assert single["consent_ids"] == [str(consented.consent.id)]
    assert [(r["id"], r["consent_ids"]) for r in listed] == [(rid, [str(consented.consent.id)])]


def test_a_consent_ended_hold_is_not_held_again_when_a_backdated_consent_ends_too(
        client, make, net):
    """Held `consent_ended` when its consent expired, a referral stays held once: a second
    consent recorded afterwards but taking effect before the hold (a form signed earlier
    and brought in late) that has since expired as well does not make the service hold it
    again; its timeline and the trail say once that the consent ended (mutant: a hold for
    `consent_ended` taken for one the receiver put, and held again)."""
    from tests.referrals.conftest import FULL

    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                 effective_at=start - timedelta(days=1), expires_at=start + timedelta(days=2))
    rid, _ = accepted(client, net)

    clock.freeze(start + timedelta(days=3))  # the consent ended: the next look holds it
    held = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).json
    assert (held["status"], held.get("status_reason")) == ("on_hold", "consent_ended")

    # Signed before the hold, recorded after it, and ended since.
    make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                 effective_at=start + timedelta(days=2, hours=12),
                 expires_at=start + timedelta(days=4))
    clock.freeze(start + timedelta(days=5))
    for _ in range(2):
        again = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider)
        assert again.status_code == 200, again.json
        assert again.json["updated_at"] == held["updated_at"]
    steps = client.get(f"/api/v1/referrals/{rid}/events",
                       headers=net.as_provider).json["items"]
    assert [s["to_status"] for s in steps if s.get("reason") == "consent_ended"] == ["on_hold"]


def test_a_referral_held_before_its_receiver_decided_is_accepted_only_under_consent(
        app, client, make, consented):
    """The consent ended while the referral was still `requested`: the service held it, and
    leaving that hold takes the receiver back to its decision. Accepting it is resuming it:
    refused (403 `consent-required`) while no consent covers what it shares, and nothing
    changes; under a new consent it is accepted, and rests on that consent from then on
    (mutant: only a move to `in_progress` checked). Rejecting needs no consent."""
    from tests.conftest import assert_problem
    from tests.referrals.conftest import FULL

    rid, held = _sent_then_consent_revoked(client, consented)
    assert (held.json["status"], held.json["status_reason"]) == ("on_hold", "consent_ended")

    refused = move(client, rid, consented.as_provider, held.headers["ETag"], status="accepted")
    assert_problem(refused, 403, "consent-required", extra={"missing_categories"})
    assert refused.json["missing_categories"] == ["contact", "identity", "referral_reason"]
    still = client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider)
    assert (still.json["status"], still.headers["ETag"]) == ("on_hold", held.headers["ETag"])

    renewed = make.consent(consented.family, [consented.clinic, consented.provider],
                           categories=FULL)
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"], status="accepted")
    assert resumed.status_code == 200, resumed.json
    assert resumed.json["status"] == "accepted"
    assert resumed.json["consent_ids"] == [str(renewed.id)]


def test_a_sender_s_moves_never_date_the_receiver_s_receipt(client, consented):
    """Receipt is the receiver's first move: a draft the sender sends, then cancels, was
    never received (mutant: any first move dated receipt). Its 45 days ran from the send,
    the delivery, not from the draft nor from the cancellation (mutants: the clock counted
    from the referral's creation, or started by a later move)."""
    start = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(start)
    draft = send(client, consented, status="draft",
                 part_c={"identified_on": start.date().isoformat()})
    assert draft.json["part_c"]["timeline_due_by"] is None  # not delivered: no clock
    rid = draft.json["id"]
    clock.freeze(start + timedelta(days=1))
    sent = move(client, rid, consented.as_clinic, draft.headers["ETag"], status="requested")
    assert sent.status_code == 200, sent.json
    due = (start + timedelta(days=46)).date().isoformat()
    assert sent.json["received_at"] is None
    assert sent.json["part_c"]["received_on"] is None
    assert sent.json["part_c"]["timeline_due_by"] == due

    clock.freeze(start + timedelta(days=2))
    cancelled = move(client, rid, consented.as_clinic, sent.headers["ETag"],
                     status="cancelled", reason="sent_in_error")
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["received_at"] is None
    assert (cancelled.json["part_c"]["received_on"],
            cancelled.json["part_c"]["timeline_due_by"]) == (None, due)


def test_a_relabelled_hold_still_returns_to_the_receiver_s_decision(client, make, consented):
    """Held by the service before the receiver decided (`requested`, its consent revoked),
    then relabelled by the receiver (`awaiting_consent`, documenting its calls): leaving the
    hold still goes back to the decision the receiver never made. `in_progress` would skip
    it (409); under a new consent it accepts (mutant: the relabel taken for the status the
    hold began in)."""
    from tests.referrals.conftest import FULL

    rid, held = _sent_then_consent_revoked(client, consented)
    assert held.json["status"] == "on_hold"
    relabelled = move(client, rid, consented.as_provider, held.headers["ETag"],
                      status="on_hold", reason="awaiting_consent",
                      note="Called the mother about a new consent.")
    assert relabelled.status_code == 200, relabelled.json
    assert relabelled.json["status_reason"] == "awaiting_consent"
    make.consent(consented.family, [consented.clinic, consented.provider], categories=FULL)

    skipped = move(client, rid, consented.as_provider, relabelled.headers["ETag"],
                   status="in_progress", business_status="contact_attempted")
    assert skipped.status_code == 409, skipped.json
    assert skipped.json["type"] == "/problems/invalid-transition"
    decided = move(client, rid, consented.as_provider, relabelled.headers["ETag"],
                   status="accepted")
    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "accepted"


def test_leaving_a_hold_follows_the_latest_hold_not_the_first(client, make, consented):
    """Held by the service while `requested`, accepted under a new consent, then held by the
    receiver (a waitlist): leaving this hold goes on to `in_progress`, since the receiver
    decided already; accepting again is 409 (mutant: the first hold's status read)."""
    from tests.referrals.conftest import FULL

    rid, held = _sent_then_consent_revoked(client, consented)
    make.consent(consented.family, [consented.clinic, consented.provider], categories=FULL)
    decided = move(client, rid, consented.as_provider, held.headers["ETag"], status="accepted")
    assert decided.status_code == 200, decided.json
    waitlisted = move(client, rid, consented.as_provider, decided.headers["ETag"],
                      status="on_hold", reason="waitlist")
    assert waitlisted.status_code == 200, waitlisted.json

    again = move(client, rid, consented.as_provider, waitlisted.headers["ETag"],
                 status="accepted")
    assert again.status_code == 409, again.json
    resumed = move(client, rid, consented.as_provider, waitlisted.headers["ETag"],
                   status="in_progress", business_status="scheduled")
    assert resumed.status_code == 200, resumed.json
    assert resumed.json["status"] == "in_progress"


def test_a_pausing_hold_for_consent_attempts_must_be_documented(client, consented):
    """`awaiting_consent` pauses the Part C clock, as `family_circumstances` does: a hold for
    it without a note is 422 naming `note` (mutant: only `family_circumstances` checked)."""
    from tests.conftest import assert_validation_error

    rid, etag = accepted(client, consented)
    assert_validation_error(move(client, rid, consented.as_provider, etag, status="on_hold",
                                 reason="awaiting_consent"), "note")
    documented = move(client, rid, consented.as_provider, etag, status="on_hold",
                      reason="awaiting_consent", note="Left a message for the mother.")
    assert documented.status_code == 200, documented.json


def test_a_hold_for_an_ended_consent_clears_the_receiver_s_business_status(
        client, consented):
    """A business status is the work of a referral in progress: the service holding it
    when its consent ends leaves none, as the receiver's own hold does (mutant: the
    receiver's `engaged` kept on the held referral)."""
    rid, etag = accepted(client, consented)
    working = move(client, rid, consented.as_provider, etag, status="in_progress",
                   business_status="engaged")
    assert working.json["business_status"] == "engaged"
    _revoke_the_consent(client, consented)

    held = client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider).json
    assert (held["status"], held["status_reason"]) == ("on_hold", "consent_ended")
    assert held.get("business_status") is None


def test_a_pause_of_less_than_a_second_is_a_started_day(client, consented):
    """A started day counts, however little of it was paused: a documented hold resumed half
    a second later pushes the due day back by one (mutant: the seconds paused rounded down,
    so half a second counted none)."""
    rid, etag, start, due = _accepted_with_part_c_at_noon(client, consented)

    clock.freeze(start + timedelta(days=1))
    held = _documented_hold(client, consented, rid, etag, "The baby is in hospital.")
    clock.freeze(start + timedelta(days=1, milliseconds=500))
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                   status="in_progress")
    assert resumed.status_code == 200, resumed.json
    assert resumed.json["part_c"]["timeline_due_by"] == (due + timedelta(days=1)).isoformat()


def test_a_page_of_both_sides_walks_every_referral_when_only_one_side_has_any(
        client, consented):
    """The list reads each side apart and merges them. The provider received three referrals
    and sent none: pages of two walk all three, the first with a cursor to the last (mutant:
    each side read only a page's worth, so one side alone could never say more follow)."""
    sent = [send(client, consented).json["id"] for _ in range(3)]

    walked, cursor, pages = [], None, 0
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/referrals", query_string=query,
                          headers=consented.as_provider)
        assert page.status_code == 200, page.json
        walked += [r["id"] for r in page.json["items"]]
        pages += 1
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert (pages, sorted(walked)) == (2, sorted(sent))
    assert len(walked) == len(set(walked))
