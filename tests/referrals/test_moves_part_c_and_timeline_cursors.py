"""A move names what it wrote; Part C's identified_on is not before the child's birth; a
timeline cursor belongs to its referral (from a providers' review, session 10)."""



from tests.conftest import audit_events
from tests.referrals.conftest import move, send


def _sent(client, net, **overrides):
    response = send(client, net, **overrides)
    assert response.status_code == 201, response.json
    return response.json["id"], response.headers["ETag"]


def test_a_transition_event_names_what_the_move_wrote_even_when_its_answer_disclosed(
        app, client, consented):
    """README "Audit": every transition is an event "with its categories and consents (a
    transition's *also* records what its answer disclosed under consent)". A rejection with a
    reason and a note writes `service_status` and `coordination_notes`: the same move whose
    answer discloses nothing names them (service.py's `written`), but once the answer shows
    the family under consent the event names only the disclosed categories, so an auditor's
    search of the family's `coordination_notes`/`service_status` misses this move."""
    rid, etag = _sent(client, consented)
    moved = move(client, rid, consented.as_provider, etag, status="rejected",
                 reason="family_declined", note="Mother declined on the phone.")
    assert moved.status_code == 200, moved.json
    with app.app_context():
        events = [e for e in audit_events(family_id=consented.family.id)
                  if e.action == "transition" and e.outcome == "permit"
                  and str(e.resource_id) == rid]
        assert events
        named = set().union(*(set(e.categories) for e in events))
    assert {"service_status", "coordination_notes"} <= named, named


def test_part_c_identified_on_before_the_child_was_born_is_422(client, consented):
    """DOMAIN.md: Part C serves birth to three, and the 7-day clock runs from identifying a
    concern about the child. The family's child was born 2026-03-02; a concern "identified"
    in 1900 (a mistyped year) is accepted and gives referral_due_by 1900-01-08, so every draft
    made with it is overdue from the start. Only "not in the future" is checked. A careful
    clinic expects 422 for a date before the child's birth date."""
    response = send(client, consented, status="draft", part_c={"identified_on": "1900-01-01"})
    assert response.status_code == 422, response.json
    assert "part_c.identified_on" in response.json["errors"]


def test_an_events_cursor_of_one_referral_is_refused_on_another(client, consented):
    """API.md: cursors are opaque keyset cursors and one "not issued by the service is 422".
    A timeline cursor was issued for one referral's timeline; on another referral it is
    taken as a version number and silently skips that referral's newer steps. (The README
    documents a list cursor reused across filters as "only positions"; a cursor for another
    resource's timeline is not a filter change.)"""
    rid, etag = _sent(client, consented)
    moved = move(client, rid, consented.as_provider, etag, status="received")
    move(client, rid, consented.as_provider, moved.headers["ETag"], status="accepted")
    page = client.get(f"/api/v1/referrals/{rid}/events?limit=1", headers=consented.as_clinic)
    cursor = page.json["next_cursor"]
    assert cursor
    other, _ = _sent(client, consented)
    response = client.get(f"/api/v1/referrals/{other}/events?cursor={cursor}",
                          headers=consented.as_clinic)
    assert response.status_code == 422, response.json
