"""Each side's view: lists, timeline, notes, drafts, Part C clocks and consent ending."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from core import time as clock
from openapi.spec import COMMITTED
from tests.conftest import assert_problem, audit_events
from tests.referrals.conftest import FULL, accepted, move, network, send


def test_a_draft_is_the_senders_alone_until_it_is_sent(client, consented):
    draft = send(client, consented, status="draft")
    assert draft.status_code == 201
    assert (draft.json["status"], draft.json["consent_ids"], draft.json["sent_at"]) == \
        ("draft", [], None)
    rid = draft.json["id"]
    for path in ("", "/events", "/notes"):
        assert_problem(client.get(f"/api/v1/referrals/{rid}{path}",
                                  headers=consented.as_provider), 404, "not-found")
    assert client.get("/api/v1/referrals?direction=received",
                      headers=consented.as_provider).json["items"] == []
    sent = move(client, rid, consented.as_clinic, draft.headers["ETag"], status="requested")
    assert sent.status_code == 200
    assert sent.json["consent_ids"] == [str(consented.consent.id)]
    assert client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider).status_code \
        == 200


def test_a_third_organization_gets_404_on_everything(client, consented):
    sent = send(client, consented)
    rid, etag = sent.json["id"], sent.headers["ETag"]
    stranger = consented.as_stranger
    for response in (client.get(f"/api/v1/referrals/{rid}", headers=stranger),
                     client.get(f"/api/v1/referrals/{rid}/events", headers=stranger),
                     client.get(f"/api/v1/referrals/{rid}/notes", headers=stranger),
                     client.post(f"/api/v1/referrals/{rid}/notes", headers=stranger,
                                 json={"body": "hello"}),
                     move(client, rid, stranger, etag, status="received")):
        assert_problem(response, 404, "not-found")
    assert client.get("/api/v1/referrals", headers=stranger).json["items"] == []


def test_lists_by_direction_status_and_change_with_one_search_event_per_page(
        app, client, make, consented):
    second = make.family(consented.clinic, given_name="Kofi")
    make.consent(second, [consented.clinic, consented.provider], categories=("identity",))
    first = send(client, consented).json
    other = send(client, consented, family_id=str(second.id),
                 shared_categories=["identity"]).json
    mine = send(client, consented, status="draft").json

    sent = client.get("/api/v1/referrals?direction=sent", headers=consented.as_clinic).json
    assert [r["id"] for r in sent["items"]] == [mine["id"], other["id"], first["id"]]
    received = client.get("/api/v1/referrals?direction=received&limit=1",
                          headers=consented.as_provider).json
    assert [r["id"] for r in received["items"]] == [other["id"]]
    # Each item as a single read shows it: the second family shares identity only.
    assert received["items"][0]["family"]["redacted"] == []
    assert "caregivers" in received["items"][0]["family"]
    assert "reasons" not in received["items"][0]
    rest = client.get(f"/api/v1/referrals?direction=received&cursor={received['next_cursor']}",
                      headers=consented.as_provider).json
    assert [r["id"] for r in rest["items"]] == [first["id"]]
    assert rest["next_cursor"] is None
    assert [r["id"] for r in client.get("/api/v1/referrals?status=draft",
                                        headers=consented.as_clinic).json["items"]] \
        == [mine["id"]]
    later = (clock.now() + timedelta(seconds=1)).isoformat()
    assert client.get("/api/v1/referrals", query_string={"updated_since": later},
                      headers=consented.as_clinic).json["items"] == []

    with app.app_context():
        searches = audit_events(action="search", resource_type="referral",
                                organization_id=consented.provider.id)
    assert len(searches) == 2  # one per page, each of one family
    assert searches[0].family_id == second.id
    assert searches[1].family_id == consented.family.id
    assert searches[1].reason == "consent"
    assert "contact" in searches[1].categories


def test_timeline_and_notes_are_filtered_for_the_other_side(app, client, make, net):
    # Consent for the referral only: no feedback to the clinic, no notes either way.
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=FULL)
    sent = send(client, net)
    rid, etag = sent.json["id"], sent.headers["ETag"]
    etag = move(client, rid, net.as_provider, etag, status="accepted").headers["ETag"]
    move(client, rid, net.as_provider, etag, status="in_progress",
         business_status="contact_attempted", note="Called twice, no answer.")
    client.post(f"/api/v1/referrals/{rid}/notes", headers=net.as_clinic,
                json={"body": "Mother prefers mornings.", "category": "coordination_notes"})

    clinic_view = client.get(f"/api/v1/referrals/{rid}/events", headers=net.as_clinic).json
    newest = clinic_view["items"][0]
    assert (newest["from_status"], newest["to_status"]) == ("accepted", "in_progress")
    assert "business_status" not in newest
    assert "note" not in newest  # not even that the provider wrote one
    assert newest["redacted"] == ["service_status"]
    assert [e["to_status"] for e in clinic_view["items"]] == \
        ["in_progress", "accepted", "requested"]

    provider_view = client.get(f"/api/v1/referrals/{rid}/events",
                               headers=net.as_provider).json["items"][0]
    assert provider_view["business_status"] == "contact_attempted"
    assert provider_view["note"]["body"] == "Called twice, no answer."

    # Each side lists its own notes only: the other's, their times and categories, are the
    # other's work on the family (found by a review: listed with the body left out).
    for side, author, body in ((net.as_provider, net.provider, "Called twice, no answer."),
                               (net.as_clinic, net.clinic, "Mother prefers mornings.")):
        notes = client.get(f"/api/v1/referrals/{rid}/notes", headers=side).json["items"]
        assert [(n["author_organization_id"], n["body"]) for n in notes] == [
            (str(author.id), body)]

    # With a consent for care coordination, both sides read each other.
    make.consent(net.family, [net.clinic, net.provider], purposes=("care_coordination",),
                 categories=("service_status", "coordination_notes"))
    notes = client.get(f"/api/v1/referrals/{rid}/notes", headers=net.as_provider).json["items"]
    assert [n["body"] for n in notes] == ["Mother prefers mornings.", "Called twice, no answer."]
    assert client.get(f"/api/v1/referrals/{rid}/events", headers=net.as_clinic).json[
        "items"][0]["note"]["body"] == "Called twice, no answer."
    assert client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json[
        "business_status"] == "contact_attempted"


def test_pages_of_notes_neither_count_nor_place_the_other_sides_unreadable_notes(
        client, make, net):
    """A page a note at a time: the other side's notes the caller may not read make no empty
    pages and no cursor (found by a review: each made an empty page whose cursor, signed but
    readable, held the note's time and id)."""
    make.consent(net.family, [net.clinic, net.provider], purposes=("referral",),
                 categories=FULL)
    rid = send(client, net).json["id"]
    for n in range(3):
        client.post(f"/api/v1/referrals/{rid}/notes", headers=net.as_provider,
                    json={"body": f"Provider note {n}."})
    client.post(f"/api/v1/referrals/{rid}/notes", headers=net.as_clinic,
                json={"body": "Mother prefers mornings."})

    pages, cursor = [], None
    while True:
        page = client.get(f"/api/v1/referrals/{rid}/notes?limit=1"
                          + (f"&cursor={cursor}" if cursor else ""), headers=net.as_clinic)
        assert page.status_code == 200
        pages.append([n["body"] for n in page.json["items"]])
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert pages == [["Mother prefers mornings."]]
    provider_pages = client.get(f"/api/v1/referrals/{rid}/notes?limit=1",
                                headers=net.as_provider).json
    assert provider_pages["items"][0]["body"] == "Provider note 2."
    assert provider_pages["next_cursor"] is not None


def test_part_c_clocks_pause_and_list_overdue(app, client, consented):
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    identified = clock.local_date(start - timedelta(days=9))
    late = send(client, consented, status="draft",
                part_c={"identified_on": identified.isoformat()}).json
    on_time = send(client, consented, part_c={"identified_on": clock.local_date(start).isoformat()})
    overdue = client.get("/api/v1/referrals?overdue=true", headers=consented.as_clinic).json
    assert [r["id"] for r in overdue["items"]] == [late["id"]]

    rid, etag = on_time.json["id"], on_time.headers["ETag"]
    etag = move(client, rid, consented.as_provider, etag, status="received").headers["ETag"]
    etag = move(client, rid, consented.as_provider, etag, status="accepted").headers["ETag"]
    held = move(client, rid, consented.as_provider, etag, status="on_hold",
                reason="family_circumstances", note="Family in hospital with the baby.")
    assert held.json["part_c"]["timeline_due_by"] == \
        clock.local_date(start + timedelta(days=45)).isoformat()
    assert held.json["part_c"]["timeline_paused_since"] is not None
    clock.freeze(start + timedelta(days=50))
    # Paused: not overdue, whatever the calendar says.
    assert rid not in [r["id"] for r in client.get(
        "/api/v1/referrals?overdue=true", headers=consented.as_provider).json["items"]]
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                   status="in_progress")
    assert resumed.json["part_c"]["timeline_due_by"] == \
        clock.local_date(start + timedelta(days=95)).isoformat()
    assert resumed.json["part_c"]["timeline_paused_since"] is None
    clock.freeze(start + timedelta(days=96))
    assert [r["id"] for r in client.get("/api/v1/referrals?overdue=true&direction=received",
                                        headers=consented.as_provider).json["items"]] == [rid]


def test_accepted_straight_from_requested_the_45_days_ran_from_delivery(client, consented):
    """Receipt (`received_on`) is the receiver's first move, whichever it is; the 45 days
    ran from delivery, not from it: accepted two days after delivery, it is due 45 days
    after delivery (the rule counted from acceptance, 47)."""
    start = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(start)
    sent = send(client, consented,
                part_c={"identified_on": (start - timedelta(days=3)).date().isoformat()})
    assert sent.json["part_c"]["referral_due_by"] == (start + timedelta(days=4)).date() \
        .isoformat()
    assert sent.json["part_c"]["timeline_due_by"] == (start + timedelta(days=45)).date() \
        .isoformat()
    clock.freeze(start + timedelta(days=2))
    moved = move(client, sent.json["id"], consented.as_provider, sent.headers["ETag"],
                 status="accepted")
    part_c = moved.json["part_c"]
    assert part_c["received_on"] == (start + timedelta(days=2)).date().isoformat()
    assert part_c["timeline_due_by"] == (start + timedelta(days=45)).date().isoformat()


def test_acknowledging_a_late_referral_leaves_it_overdue(client, make):
    """A referral delivered 50 days ago and never acknowledged is late; marking it
    `received` then neither gives it 45 new days nor takes it off the overdue list (a review)."""
    delivered = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # noon in Michigan
    clock.freeze(delivered)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                 effective_at=delivered - timedelta(days=1), expires_in_days=300)
    rid = send(client, net, part_c={"identified_on": "2026-05-30"}).json["id"]
    url = "/api/v1/referrals?overdue=true"

    clock.freeze(delivered + timedelta(days=50))
    assert _ids(client, url, net.as_provider) == [rid]
    etag = client.get(f"/api/v1/referrals/{rid}", headers=net.as_provider).headers["ETag"]
    moved = move(client, rid, net.as_provider, etag, status="received")
    assert moved.status_code == 200, moved.json
    assert moved.json["part_c"]["received_on"] == "2026-07-21"
    assert moved.json["part_c"]["timeline_due_by"] == "2026-07-16"  # 1 June + 45 days
    assert _ids(client, url, net.as_provider) == [rid]


def test_a_receiver_acknowledging_on_day_44_keeps_its_45_days(client, make):
    """Acknowledged on the 44th day, the referral is still due on the 45th, and late the
    day after (the rule counted from acknowledgement gave it almost 90)."""
    delivered = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    clock.freeze(delivered)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                 effective_at=delivered - timedelta(days=1), expires_in_days=300)
    sent = send(client, net, part_c={"identified_on": "2026-06-01"})
    clock.freeze(delivered + timedelta(days=44))
    moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                 status="accepted")
    assert moved.json["part_c"]["timeline_due_by"] == "2026-07-16"
    clock.freeze(delivered + timedelta(days=46))
    assert _ids(client, "/api/v1/referrals?overdue=true", net.as_provider) == [sent.json["id"]]


def test_pauses_add_up_and_the_due_day_itself_is_not_overdue(app, client, consented):
    """Each documented pause pushes the 45 days back by the days it lasted (a started day
    counts); a pause begun while paused keeps the first start; a waitlist does not pause."""
    start = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(start)
    rid, etag = accepted(client, consented, part_c={"identified_on": start.date().isoformat()})
    provider = consented.as_provider

    def at(days, **body):
        nonlocal etag
        clock.freeze(start + timedelta(days=days))
        answer = move(client, rid, provider, etag, **body)
        assert answer.status_code == 200, answer.json
        etag = answer.headers["ETag"]
        return answer.json["part_c"]

    at(1, status="on_hold", reason="family_circumstances", note="In hospital.")
    again = at(2, status="on_hold", reason="awaiting_consent", note="Third call.")
    assert again["timeline_paused_since"].startswith((start + timedelta(days=1)).date()
                                                     .isoformat())
    assert at(4, status="in_progress")["timeline_due_by"] == \
        (start + timedelta(days=48)).date().isoformat()
    at(5, status="on_hold", reason="waitlist")
    at(6, status="on_hold", reason="family_circumstances", note="Moved.")
    assert at(8, status="in_progress")["timeline_due_by"] == \
        (start + timedelta(days=50)).date().isoformat()
    url = "/api/v1/referrals?overdue=true"
    # Days end at midnight in the service's time zone (TIME_ZONE), not in UTC.
    day_after = datetime.combine((start + timedelta(days=51)).date(), datetime.min.time(),
                                 tzinfo=ZoneInfo(app.config["TIME_ZONE"]))
    clock.freeze(day_after - timedelta(microseconds=1))
    assert _ids(client, url, provider) == []
    clock.freeze(day_after)
    assert _ids(client, url, provider) == [rid]


def test_a_referral_never_acknowledged_is_overdue_45_days_after_its_delivery(
        app, client, consented):
    """The receiver's 45 days start at delivery; one that never moves is on its overdue
    list from the day after the 45th since delivery, and never on the referrer's."""
    start = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(start)
    rid = send(client, consented, part_c={"identified_on": start.date().isoformat()}).json["id"]
    unclocked = send(client, consented).json["id"]  # not a Part C referral: no clock
    clock.freeze(start + timedelta(days=1))
    assert client.get(f"/api/v1/referrals/{rid}", headers=consented.as_provider) \
        .json["status"] == "requested"
    url = "/api/v1/referrals?overdue=true"
    day_46 = datetime.combine((start + timedelta(days=46)).date(), datetime.min.time(),
                              tzinfo=ZoneInfo(app.config["TIME_ZONE"]))
    clock.freeze(day_46 - timedelta(microseconds=1))
    assert _ids(client, url, consented.as_provider) == []
    clock.freeze(day_46)
    assert _ids(client, url, consented.as_provider) == [rid]
    assert unclocked not in _ids(client, url, consented.as_provider)
    assert _ids(client, url, consented.as_clinic) == []


def test_a_hold_begun_after_the_45_days_ran_out_does_not_hide_a_late_referral(
        client, consented):
    """A clock that has run out cannot be paused: a referral received 50 days ago is past its
    45 days whatever happens next. A documented hold then leaves it on the overdue list, and
    its resumption leaves the day it fell due as it was."""
    start = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(start)
    rid, etag = accepted(client, consented, part_c={"identified_on": start.date().isoformat()})
    due = (start + timedelta(days=45)).date().isoformat()
    clock.freeze(start + timedelta(days=50))
    overdue = "/api/v1/referrals?overdue=true&direction=received"
    assert _ids(client, overdue, consented.as_provider) == [rid]
    held = move(client, rid, consented.as_provider, etag, status="on_hold",
                reason="family_circumstances", note="Family moved in with relatives.")
    assert held.status_code == 200, held.json
    assert held.json["part_c"]["timeline_paused_since"] is None
    assert _ids(client, overdue, consented.as_provider) == [rid]
    clock.freeze(start + timedelta(days=60))
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                   status="in_progress")
    assert resumed.json["part_c"]["timeline_due_by"] == due


def _part_c_errors(part_c) -> list[str]:
    """What the committed OpenAPI document finds wrong with a `part_c` answer."""
    document = yaml.safe_load(COMMITTED.read_text())
    registry = Registry().with_resource(
        "urn:doc", Resource.from_contents(document, default_specification=DRAFT4))
    validator = OAS30Validator({"$ref": "urn:doc#/components/schemas/PartC"},
                               registry=registry)
    return [e.message for e in validator.iter_errors(part_c)]


@pytest.mark.parametrize("view", ["send_answer", "sender_without_feedback_consent"])
def test_part_c_answers_match_the_openapi_document(client, make, net, view):
    """Before the receiver's first move the 45-day clock is the delivery's day + 45, which
    the referrer knows: both sides see it. Once the receiver keeps it (its pauses move it),
    withheld from a referrer no consent lets see the receiver's feedback, it is absent,
    which the document allows."""
    purposes = ("referral", "care_coordination") if view == "send_answer" else ("referral",)
    make.consent(net.family, [net.clinic, net.provider], purposes=purposes,
                 categories=("identity", "contact", "referral_reason"))
    sent = send(client, net, part_c={"identified_on": clock.today().isoformat()})
    assert sent.status_code == 201, sent.json
    part_c = sent.json["part_c"]
    if view == "send_answer":
        assert (part_c["timeline_due_by"], part_c["timeline_paused_since"]) == (
            (clock.today() + timedelta(days=45)).isoformat(), None)
        assert "service_status" not in sent.json["redacted"]
    else:
        moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                     status="accepted")
        assert moved.json["part_c"]["timeline_due_by"] is not None
        part_c = client.get(f"/api/v1/referrals/{sent.json['id']}",
                            headers=net.as_clinic).json["part_c"]
        assert "timeline_due_by" not in part_c and "timeline_paused_since" not in part_c
    assert _part_c_errors(part_c) == [], part_c


def test_the_sender_sees_the_reasons_it_wrote_even_when_it_does_not_share_them(client,
                                                                                 consented):
    """The author of a piece of information sees it: a referral sharing only `identity`
    shows its sender the reasons and detail it wrote, in the answer and in every read; the
    receiver does not get them."""
    sent = send(client, consented, shared_categories=["identity"])
    assert sent.status_code == 201, sent.json
    url = f"/api/v1/referrals/{sent.json['id']}"
    for seen in (sent.json, client.get(url, headers=consented.as_clinic).json,
                 client.get("/api/v1/referrals", headers=consented.as_clinic).json["items"][0]):
        assert seen.get("reasons") == ["feeding_concerns", "caregiver_depression"], seen
        assert seen.get("reason_detail") == "Mother reports low mood since the birth."
        assert seen["redacted"] == []
    received = client.get(url, headers=consented.as_provider).json
    assert "reasons" not in received and "reason_detail" not in received


def test_a_cursor_from_one_filter_reused_with_another_only_positions(client, consented):
    """A cursor says where a page ends, never which referrals to list: the filters (and the
    caller) of the request that carries it decide."""
    ids = [send(client, consented).json["id"] for _ in range(3)]
    first = client.get("/api/v1/referrals?direction=sent&limit=1",
                       headers=consented.as_clinic).json
    assert [r["id"] for r in first["items"]] == [ids[2]]
    other = client.get(f"/api/v1/referrals?status=requested&cursor={first['next_cursor']}",
                       headers=consented.as_clinic).json
    assert [r["id"] for r in other["items"]] == [ids[1], ids[0]]
    theirs = client.get(f"/api/v1/referrals?cursor={first['next_cursor']}",
                        headers=consented.as_stranger).json
    assert theirs["items"] == []


def _ids(client, url, headers) -> list[str]:
    return [r["id"] for r in client.get(url, headers=headers).json["items"]]


def test_the_referrers_overdue_list_never_tells_of_the_receivers_clock(client, make, net):
    """Late on the provider's 45-day clock is the provider's `service_status`: no list page,
    nor its cursor, of the referrer's names such a referral, consent or not."""
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    for _ in range(2):
        sent = send(client, net, part_c={"identified_on": clock.local_date(start).isoformat()})
        move(client, sent.json["id"], net.as_provider, sent.headers["ETag"], status="received")
    clock.freeze(start + timedelta(days=50))
    assert client.get("/api/v1/referrals?overdue=true&limit=1", headers=net.as_clinic).json \
        == {"items": [], "next_cursor": None}
    assert len(client.get("/api/v1/referrals?overdue=true",
                          headers=net.as_provider).json["items"]) == 2


@pytest.mark.parametrize("access", ["write_note", "list_notes", "timeline"])
def test_any_look_at_a_referral_after_its_consent_expired_holds_it(
        app, client, consented, access):
    rid = send(client, consented).json["id"]
    clock.freeze(consented.consent.expires_at + timedelta(seconds=1))
    url = f"/api/v1/referrals/{rid}"
    if access == "write_note":
        answer = client.post(f"{url}/notes", json={"body": "Called."},
                             headers=consented.as_provider)
    else:
        answer = client.get(f"{url}/{'notes' if access == 'list_notes' else 'events'}",
                            headers=consented.as_provider)
    assert answer.status_code < 300, answer.json
    with app.app_context():
        assert [e.resource_id for e in audit_events(action="transition",
                                                     reason="consent_ended")] == [rid]
    seen = client.get(url, headers=consented.as_clinic).json
    assert (seen["status"], seen["status_reason"]) == ("on_hold", "consent_ended")


def test_an_expired_consent_holds_the_referral_at_the_next_access_or_by_the_sweep(
        app, client, consented):
    first = send(client, consented).json["id"]
    second = send(client, consented).json["id"]
    clock.freeze(consented.consent.expires_at + timedelta(seconds=1))
    seen = client.get(f"/api/v1/referrals/{first}", headers=consented.as_clinic).json
    assert (seen["status"], seen["status_reason"]) == ("on_hold", "consent_ended")

    result = CliRunner().invoke(app.cli, ["referrals", "hold-expired"])
    # The CLI runs in its own app context against the same database.
    assert result.exit_code == 0, result.output
    assert '"held": 1' in result.output
    assert client.get(f"/api/v1/referrals/{second}", headers=consented.as_provider).json[
        "status"] == "on_hold"
    with app.app_context():
        holds = audit_events(action="transition", reason="consent_ended")
    assert {e.resource_id for e in holds} == {first, second}
