"""The recorder: one event per access, in the caller's transaction; refusals after rollback."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import audit.recorder
from audit.chain import verify
from audit.models import AuditEvent
from auth.models import AccessToken
from core import time as clock
from core.db import db
from organizations.models import Organization
from tests.conftest import audit_events, basic, bearer, count, make_app


def _token(client, oauth_client, secret, **form):
    return client.post("/oauth/token", data={"grant_type": "client_credentials", **form},
                       headers=basic(oauth_client.client_id, secret))


def test_token_issue_is_recorded_with_its_actor_and_request(app, client, make):
    org = make.organization()
    oauth_client, secret = make.client(org, ["directory:read"])
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={**basic(oauth_client.client_id, secret),
                                    "X-Request-ID": "req-42"})
    assert response.status_code == 200
    with app.app_context():
        [event] = audit_events(resource_type="access_token")
        token = db.session.scalars(sa.select(AccessToken)).one()
        assert (event.action, event.outcome, event.reason) == ("create", "permit",
                                                               "client_credentials")
        assert event.organization_id == org.id
        assert event.client_id == oauth_client.client_id
        assert event.token_id == token.id and event.resource_id == str(token.id)
        assert (event.request_id, event.request_method) == ("req-42", "POST")
        assert event.request_path == "/oauth/token"
        assert event.request_ip == "127.0.0.1"
        assert verify(db.session).valid


def test_introspection_and_revocation_are_recorded(app, client, make):
    org = make.organization()
    oauth_client, secret = make.client(org, ["directory:read"])
    other_client, _ = make.client(make.organization(name="Other"), ["directory:read"])
    own = _token(client, oauth_client, secret).json["access_token"]
    foreign = make.token(oauth_client=other_client, scopes=["directory:read"])
    credentials = basic(oauth_client.client_id, secret)

    for token in (own, foreign, "unknown-token"):
        assert client.post("/oauth/introspect", data={"token": token},
                           headers=credentials).status_code == 200
    assert client.post("/oauth/revoke", data={"token": own}, headers=credentials).status_code == 200
    assert client.post("/oauth/revoke", data={"token": foreign},
                       headers=credentials).status_code == 400

    with app.app_context():
        events = [(e.action, e.outcome, e.reason)
                  for e in audit_events(client_id=oauth_client.client_id)]
    assert events == [
        ("create", "permit", "client_credentials"),
        ("read", "permit", "active"),
        ("read", "deny", "not_own_token"),
        ("read", "permit", "unknown_token"),
        ("revoke", "permit", "own_token"),
        ("revoke", "deny", "not_own_token"),
    ]


def test_failed_client_authentication_names_the_claimed_client(app, client, make):
    oauth_client, _ = make.client(make.organization(), ["directory:read"])
    wrong = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=basic(oauth_client.client_id, "wrong-secret"))
    assert wrong.status_code == 401
    stranger = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=basic(str(uuid.uuid4()), "whatever"))
    assert stranger.status_code == 401
    with app.app_context():
        events = audit_events(outcome="deny")
    assert [(e.action, e.reason, e.client_id, e.organization_id) for e in events] == [
        ("create", "invalid_client", oauth_client.client_id, oauth_client.organization_id)]


def test_refusals_of_an_authenticated_actor_are_recorded_after_rollback(app, client, make):
    org = make.organization()
    reader = make.token(org, ["directory:read", "families:read"])
    missing = uuid.uuid4()
    assert client.patch(f"/api/v1/organizations/{org.id}", json={"accepting_referrals": True},
                        headers=bearer(reader)).status_code == 403
    assert client.get(f"/api/v1/families/{missing}?purpose=treatment",
                      headers=bearer(reader)).status_code == 404
    other = make.organization(name="Other")
    writer = make.token(org, ["directory:write"])
    assert client.patch(f"/api/v1/organizations/{other.id}", json={"accepting_referrals": True},
                        headers=bearer(writer)).status_code == 403
    with app.app_context():
        events = [(e.action, e.outcome, e.reason, e.resource_type, e.resource_id)
                  for e in audit_events(organization_id=org.id)]
    assert events == [
        ("update", "deny", "insufficient_scope", "organization", str(org.id)),
        ("read", "deny", "not_found", "family", str(missing)),
        ("update", "deny", "forbidden", "organization", str(other.id)),
    ]
    with app.app_context():
        paths = [e.request_path for e in audit_events(organization_id=org.id)]
    assert paths[1] == f"/api/v1/families/{missing}"  # never the query string


def test_anonymous_and_malformed_requests_do_not_grow_the_chain(app, client, make):
    org = make.organization()
    token = make.token(org, ["directory:write"])
    with app.app_context():
        before = count(AuditEvent)  # the operator's: the organization and its client
    assert client.get("/api/v1/organizations").status_code == 401
    assert client.get("/api/v1/me", headers=bearer("forged")).status_code == 401
    assert client.patch(f"/api/v1/organizations/{org.id}", data="{",
                        content_type="application/json",
                        headers=bearer(token)).status_code == 400
    with app.app_context():
        assert count(AuditEvent) == before


def test_a_change_and_its_event_commit_together(app, client, make):
    org = make.organization()
    token = make.token(org, ["directory:write"])
    response = client.patch(f"/api/v1/organizations/{org.id}", json={"accepting_referrals": True},
                            headers=bearer(token))
    assert response.status_code == 200
    with app.app_context():
        [event] = audit_events(resource_type="organization", action="update")
        assert (event.outcome, event.reason, event.resource_id) == ("permit", "own_listing",
                                                                    str(org.id))


def _record(reason):
    audit.recorder.record(action="read", outcome="permit", reason=reason,
                          resource_type="audit_event")


def test_a_savepoint_rolled_back_takes_its_own_events_only(app):
    """What was recorded before a savepoint commits with the changes it describes, whatever
    the savepoint did; what was recorded inside one that rolled back goes with it."""
    with app.app_context():
        _record("before")
        try:
            with db.session.begin_nested():
                _record("inside, rolled back")
                raise LookupError
        except LookupError:
            pass
        with db.session.begin_nested():
            _record("inside, released")
            with pytest.raises(LookupError), db.session.begin_nested():
                _record("nested deeper, rolled back")
                raise LookupError
        _record("after")
        db.session.commit()
        assert [e.reason for e in audit_events(resource_type="audit_event")] == [
            "before", "inside, released", "after"]


def test_a_savepoint_released_inside_one_that_rolls_back_keeps_what_came_before(app):
    """Releasing a savepoint is not the commit: its events wait for the transaction's, so
    the enclosing savepoint's rollback takes them and nothing recorded before it (found by a
    review of the change: everything was written at the release, and rolled back with it)."""
    with app.app_context():
        _record("before")
        with pytest.raises(LookupError), db.session.begin_nested():
            with db.session.begin_nested():
                _record("inner, released")
            _record("outer, rolled back")
            raise LookupError
        db.session.commit()
        assert [e.reason for e in audit_events(resource_type="audit_event")] == ["before"]


def test_a_rollback_forgets_every_event_and_savepoint_mark(app):
    with app.app_context():
        with db.session.begin_nested():
            _record("rolled back with the transaction")
        db.session.rollback()
        _record("committed")
        db.session.commit()
        assert [e.reason for e in audit_events(resource_type="audit_event")] == ["committed"]


def test_when_the_event_cannot_be_written_nothing_is_disclosed_or_changed(
        app, client, make, monkeypatch):
    org = make.organization()
    oauth_client, secret = make.client(org, ["directory:read"])
    with app.app_context():
        before = count(AuditEvent)  # the operator's

    # The audit write fails in the database (here: its table is gone), on either writer.
    missing = sa.Table("audit_events_gone", sa.MetaData(),
                       *[sa.Column(c.name, c.type) for c in AuditEvent.__table__.columns])
    monkeypatch.setattr(audit.recorder, "_INSERT_EVENTS", missing.insert())
    monkeypatch.setattr(audit.recorder, "_INSERT_PENDING", missing.insert())
    response = _token(client, oauth_client, secret)
    assert response.status_code == 503
    assert response.json["type"] == "/problems/service-unavailable"
    assert "access_token" not in response.get_data(as_text=True)
    with app.app_context():
        assert count(AccessToken) == 0
        assert count(AuditEvent) == before


def test_seq_has_no_gaps_and_every_event_chains(app, client, make):
    org = make.organization()
    oauth_client, secret = make.client(org, ["directory:read"])
    for _ in range(5):
        _token(client, oauth_client, secret)
    _token(client, oauth_client, "wrong")  # a refusal, recorded after its rollback
    with app.app_context():
        events = audit_events(resource_type="access_token")
        seqs = [e.seq for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + 6))
        for previous, event in zip(events, events[1:], strict=False):
            assert event.prev_hash == previous.hash
        verdict = verify(db.session)
        assert verdict.valid and verdict.head["seq"] == seqs[-1]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET reason = 'edited'",
    "DELETE FROM audit_events",
    "UPDATE audit_checkpoints SET hash = 'x'",
    "DELETE FROM audit_checkpoints",
])
def test_the_database_refuses_to_change_the_trail(app, client, make, statement):
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    _token(client, oauth_client, secret)
    with app.app_context():
        from audit.checkpoints import checkpoint_now

        before = count(AuditEvent)

        checkpoint_now(db.session)
        db.session.commit()
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                db.session.begin_nested():
            db.session.execute(sa.text(statement))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.reason == "edited")) == 0
        assert count(AuditEvent) == before


def test_postgresql_refuses_truncate(app, client, make):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("TRUNCATE is PostgreSQL's")
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                db.session.begin_nested():
            db.session.execute(sa.text("TRUNCATE audit_events"))


@pytest.mark.parametrize("table,key", [
    ("audit_events", "seq"),
    ("audit_checkpoints", "seq"),
    ("audit_listed_families", "seq"),
])
def test_sqlite_refuses_replacing_the_trail(app, table, key):
    """`INSERT OR REPLACE` deletes the row holding the key without firing delete triggers:
    SQLite refuses the insert of a key already in the trail, so no event, checkpoint or
    listed family is rewritten in place."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("INSERT OR REPLACE is SQLite's")
        from audit.checkpoints import checkpoint_now

        audit.record_operator("create", "organization", "org-1")
        audit.record(action="search", outcome="permit", reason="custodian",
                     resource_type="family", family_ids=[uuid.uuid4(), uuid.uuid4()])
        db.session.commit()
        checkpoint_now(db.session)
        db.session.commit()
        before = db.session.execute(sa.text(f"SELECT * FROM {table} ORDER BY {key}")  # noqa: S608
                                    ).mappings().all()
        row = dict(before[0])
        row.update({"reason": "rewritten"} if table == "audit_events"
                   else {"hash": "0" * 64} if table == "audit_checkpoints" else {})
        columns = ", ".join(row)
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                db.session.begin_nested():
            db.session.execute(sa.text(
                f"INSERT OR REPLACE INTO {table} ({columns}) "  # noqa: S608
                f"VALUES ({', '.join(':' + c for c in row)})"), row)
        after = db.session.execute(sa.text(f"SELECT * FROM {table} ORDER BY {key}")  # noqa: S608
                                   ).mappings().all()
        assert after == before
        assert verify(db.session).valid


AWKWARD = ['say "hi"', "back\\slash", "tab\tnew\nline\r", "bell\x07 unit\x1f", "é 😀 中文",
           "line\u2028separator", "del\x7f", "", "/api/v1/families/ü?x=1"]


@pytest.mark.parametrize("text", AWKWARD)
def test_the_database_and_python_hash_an_event_alike(app, text):
    """PostgreSQL's trigger and audit/chain.py must build the same bytes for any field."""
    from audit.chain import event_hash

    with app.app_context():
        audit.record(action="read", outcome="deny", reason="test", resource_type="audit_event",
                     resource_id=text[:64], client_id=text[:64], categories=["identity"],
                     consent_ids=[uuid.uuid4()], family_id=uuid.uuid4(),
                     family_ids=[uuid.uuid4(), uuid.uuid4()])
        db.session.commit()
        [event] = audit_events(reason="test")
        values = {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}
        assert len(event.family_ids) == 2
        assert event_hash(values) == event.hash
        assert verify(db.session).valid


def test_a_refusal_names_the_actor_exactly_as_the_client_registry_does(app, client, make):
    org = make.organization()
    oauth_client, _ = make.client(org, ["directory:read"])
    token = make.token(oauth_client=oauth_client, scopes=["directory:read"])
    assert client.get(f"/api/v1/organizations/{uuid.uuid4()}",
                      headers=bearer(token)).status_code == 404
    with app.app_context():
        [event] = audit_events(organization_id=org.id)
        assert event.client_id == oauth_client.client_id  # the dashed UUID on every database
        assert isinstance(event.token_id, uuid.UUID)


@pytest.mark.parametrize("scope", ["audit:read", "everything:admin"])
def test_asking_for_a_scope_the_client_may_not_have_is_a_recorded_refusal(app, client, make,
                                                                          scope):
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    answer = _token(client, oauth_client, secret, scope=scope)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_scope"
    with app.app_context():
        [event] = audit_events(outcome="deny")
        assert (event.action, event.reason, event.client_id) == (
            "create", "invalid_scope", oauth_client.client_id)
        assert count(AccessToken) == 0


_NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _change_listing_slowly(app, make, before_commit, *, while_sending=None) -> tuple:
    """PATCH an organization's listing on an app of its own, the clock frozen at _NOON;
    `before_commit(response)` runs after the view recorded its event and before the commit
    (`_finish`), and `while_sending` (a before_cursor_execute listener) beside every
    statement. The response, and the events and the listing as the database holds them
    after: (response, events added, accepting referrals)."""
    org = make.organization()
    token = make.token(org, ["directory:write"])
    slow = make_app(app.config["SQLALCHEMY_DATABASE_URI"])
    slow.after_request(lambda response: (before_commit(response), response)[1])
    with app.app_context():
        before = count(AuditEvent)
    if while_sending:
        # On the Engine class: the suite's sessions all run on its one outer connection.
        event.listen(sa.engine.Engine, "before_cursor_execute", while_sending)
    try:
        clock.freeze(_NOON)
        response = slow.test_client().patch(f"/api/v1/organizations/{org.id}",
                                            json={"accepting_referrals": True},
                                            headers=bearer(token))
    finally:
        clock.freeze(None)
        if while_sending:
            event.remove(sa.engine.Engine, "before_cursor_execute", while_sending)
        with slow.app_context():
            db.engine.dispose()
    with app.app_context():
        return (response, count(AuditEvent) - before,
                db.session.get(Organization, org.id).accepting_referrals)


@pytest.mark.parametrize("took, status", [(29, 200), (31, 503)])
def test_a_request_whose_events_would_commit_past_the_window_changes_nothing(
        app, make, took, status):
    """Events commit within 30 s of being recorded, or not at all (what makes an export whose
    range ended a minute ago final): gunicorn's gthread workers never end a slow request (a
    fault review saw one commit 52 s after its events), so the recorder refuses instead."""
    response, added, accepting = _change_listing_slowly(
        app, make, lambda response: clock.freeze(_NOON + timedelta(seconds=took)))

    assert response.status_code == status, response.get_data(as_text=True)
    assert added == (status == 200)
    assert accepting is (status == 200)


def test_writes_at_the_commit_that_outlast_the_window_change_nothing(app, make):
    """The window is measured last, once the commit's own writes are done (the flush, the
    events, on SQLite the chain's head): each may wait on locks or the disk (found by a
    review: measured before them, a write that took 31 s committed its event anyway)."""
    committing, stalled = [], []

    def stall(conn, cursor, statement, parameters, context, executemany):
        # The first statement of the commit (past the recorder's check): 31 s of waiting.
        if committing and not stalled and not statement.lstrip().upper().startswith(
                ("SAVEPOINT", "BEGIN", "RELEASE")):
            stalled.append(statement.split("(")[0][:60])
            clock.freeze(_NOON + timedelta(seconds=31))

    response, added, accepting = _change_listing_slowly(
        app, make, committing.append, while_sending=stall)

    assert stalled, "the commit sent no statement: the test proves nothing"
    assert response.status_code == 503, (response.status_code, stalled)
    assert added == 0
    assert accepting is not True
