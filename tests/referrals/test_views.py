"""Each side's view: lists, timeline, notes, drafts, Part C clocks and consent ending."""

from datetime import timedelta

import pytest
from click.testing import CliRunner

from core import time as clock
from tests.conftest import assert_problem, audit_events
from tests.referrals.conftest import FULL, move, send


@pytest.fixture
def consented(make, net):
    net.consent = make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    return net


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
    assert "body" not in newest["note"]
    assert set(newest["redacted"]) == {"service_status", "coordination_notes"}
    assert [e["to_status"] for e in clinic_view["items"]] == \
        ["in_progress", "accepted", "requested"]

    provider_view = client.get(f"/api/v1/referrals/{rid}/events",
                               headers=net.as_provider).json["items"][0]
    assert provider_view["business_status"] == "contact_attempted"
    assert provider_view["note"]["body"] == "Called twice, no answer."

    notes = client.get(f"/api/v1/referrals/{rid}/notes", headers=net.as_provider).json["items"]
    by_author = {n["author_organization_id"]: n for n in notes}
    assert by_author[str(net.provider.id)]["body"] == "Called twice, no answer."
    assert "body" not in by_author[str(net.clinic.id)]
    assert by_author[str(net.clinic.id)]["redacted"] == ["coordination_notes"]

    # With a consent for care coordination, both sides read each other.
    make.consent(net.family, [net.clinic, net.provider], purposes=("care_coordination",),
                 categories=("service_status", "coordination_notes"))
    notes = client.get(f"/api/v1/referrals/{rid}/notes", headers=net.as_provider).json["items"]
    assert all("body" in n for n in notes)
    assert client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json[
        "business_status"] == "contact_attempted"


def test_part_c_clocks_pause_and_list_overdue(app, client, consented):
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    identified = (start - timedelta(days=9)).date()
    late = send(client, consented, status="draft",
                part_c={"identified_on": identified.isoformat()}).json
    on_time = send(client, consented, part_c={"identified_on": start.date().isoformat()})
    overdue = client.get("/api/v1/referrals?overdue=true", headers=consented.as_clinic).json
    assert [r["id"] for r in overdue["items"]] == [late["id"]]

    rid, etag = on_time.json["id"], on_time.headers["ETag"]
    etag = move(client, rid, consented.as_provider, etag, status="received").headers["ETag"]
    etag = move(client, rid, consented.as_provider, etag, status="accepted").headers["ETag"]
    held = move(client, rid, consented.as_provider, etag, status="on_hold",
                reason="family_circumstances", note="Family in hospital with the baby.")
    assert held.json["part_c"]["timeline_due_by"] == (start + timedelta(days=45)).date() \
        .isoformat()
    assert held.json["part_c"]["timeline_paused_since"] is not None
    clock.freeze(start + timedelta(days=50))
    # Paused: not overdue, whatever the calendar says.
    assert rid not in [r["id"] for r in client.get(
        "/api/v1/referrals?overdue=true", headers=consented.as_provider).json["items"]]
    resumed = move(client, rid, consented.as_provider, held.headers["ETag"],
                   status="in_progress")
    assert resumed.json["part_c"]["timeline_due_by"] == (start + timedelta(days=95)).date() \
        .isoformat()
    assert resumed.json["part_c"]["timeline_paused_since"] is None
    clock.freeze(start + timedelta(days=96))
    assert [r["id"] for r in client.get("/api/v1/referrals?overdue=true&direction=received",
                                        headers=consented.as_provider).json["items"]] == [rid]


def test_the_referrers_overdue_list_never_tells_of_the_receivers_clock(client, make, net):
    """Late on the provider's 45-day clock is the provider's `service_status`: no list page,
    nor its cursor, of the referrer's names such a referral, consent or not."""
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    for _ in range(2):
        sent = send(client, net, part_c={"identified_on": start.date().isoformat()})
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
