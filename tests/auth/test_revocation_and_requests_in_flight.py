"""A token's revocation and the requests that use it (found by a race review).

A request checks its token as it starts; one that then waited, for a family's row say, went
on after its token, or its client, was revoked and answered, disclosed the family and put
its `read` after the `revoke` on the trail. Now the trail refuses an event permitted under a
revoked token (the request is answered 401, nothing done), and a revocation waits for the
requests that recorded theirs (migration 0020). And revoking a revoked token again is recorded
as `already_revoked`, not as a second revocation.
"""

import pytest
import sqlalchemy as sa

from auth.models import AccessToken
from core.db import db
from core.ids import secret_digest
from families.models import Family
from tests.conftest import Factory, assert_problem, audit_events, basic, bearer
from tests.race_support import run_until_done_or_blocked, skip_on_sqlite
from tests.referrals.conftest import FULL, network


def _token(client, oauth_client, secret):
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=basic(oauth_client.client_id, secret))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["access_token"]


def _revocations(token) -> list[str]:
    token_id = db.session.scalar(sa.select(AccessToken.id).where(
        AccessToken.token_hash == secret_digest(token)))
    return [e.reason for e in audit_events(action="revoke", resource_type="access_token")
            if e.resource_id == str(token_id)]


def test_revoking_a_revoked_token_again_is_recorded_as_already_revoked(app, client, make):
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    token = _token(client, oauth_client, secret)
    for _ in range(2):
        response = client.post("/oauth/revoke", data={"token": token},
                               headers=basic(oauth_client.client_id, secret))
        assert response.status_code == 200
    with app.app_context():
        assert _revocations(token) == ["own_token", "already_revoked"]


def _provider_reading(served):
    """(PostgreSQL) The provider, consented to read the clinic's family: the network, its
    client, secret and token, and the database engine."""
    skip_on_sqlite(served)
    make = Factory(served)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    provider_client, secret = make.client(net.provider, ["families:read"])
    token = _token(served.test_client(), provider_client, secret)
    with served.app_context():
        return net, provider_client, secret, token, db.engine


def _waiting_read(served, revoke):
    """A provider's family read that checked its token and waits for the family's row (held
    by another transaction) while `revoke(provider client, secret, token)` runs; its answer
    and the permitted reads of the family on the trail."""
    net, provider_client, secret, token, engine = _provider_reading(served)
    gate = engine.connect()
    held = gate.begin()  # another request holds the family (a revocation, a change, ...)
    gate.execute(sa.select(Family.id).where(Family.id == net.family.id).with_for_update())

    def read():
        return served.test_client().get(f"/api/v1/families/{net.family.id}?purpose=referral",
                                        headers=bearer(token))

    try:
        thread, answers = run_until_done_or_blocked(served, read, blocked_backends=1)
        assert "value" not in answers  # authenticated, and waiting
        revoke(provider_client, secret, token)
        assert served.test_client().get("/api/v1/me", headers=bearer(token)).status_code == 401
    finally:
        held.commit()
        gate.close()
    thread.join(timeout=15)
    with served.app_context():
        reads = audit_events(action="read", resource_type="family", outcome="permit")
    return answers["value"], reads


@pytest.mark.no_db
def test_a_request_in_flight_discloses_nothing_once_its_token_is_revoked(served):
    def revoke(oauth_client, secret, token):
        answer = served.test_client().post("/oauth/revoke", data={"token": token},
                                           headers=basic(oauth_client.client_id, secret))
        assert answer.status_code == 200

    answer, reads = _waiting_read(served, revoke)
    assert_problem(answer, 401, "unauthorized")
    assert "revoked while the request ran" in answer.json["detail"]
    assert answer.headers["WWW-Authenticate"] == \
        'Bearer realm="imh-referral-network", error="invalid_token"'
    assert "child" not in answer.get_data(as_text=True)
    assert reads == []


@pytest.mark.no_db
def test_a_request_in_flight_discloses_nothing_once_its_client_is_revoked(served):
    def revoke(oauth_client, secret, token):
        result = served.test_cli_runner().invoke(args=["client", "revoke",
                                                       str(oauth_client.id)])
        assert result.exit_code == 0, result.output

    answer, reads = _waiting_read(served, revoke)
    assert_problem(answer, 401, "unauthorized")
    assert reads == []


@pytest.mark.no_db
@pytest.mark.parametrize("by", ["token", "client"])
def test_a_revocation_waits_for_the_requests_that_recorded_under_the_token(served, by):
    """A request that recorded its disclosure holds its client's turn until it commits: the
    revocation comes after it, on the trail too."""
    _, provider_client, secret, token, engine = _provider_reading(served)
    # As a request does once it recorded its event, and until it commits.
    in_flight = engine.connect()
    recorded = in_flight.begin()
    in_flight.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(
        sa.func.oauth_client_turn(str(provider_client.id)))))

    def revoke():
        if by == "token":
            return served.test_client().post("/oauth/revoke", data={"token": token},
                                              headers=basic(provider_client.client_id, secret))
        return served.test_cli_runner().invoke(args=["client", "revoke",
                                                     str(provider_client.id)])

    try:
        thread, answers = run_until_done_or_blocked(served, revoke, blocked_backends=1)
        assert "value" not in answers  # it waits for the request
        # Not revoked yet: the token still works meanwhile.
        assert served.test_client().get("/api/v1/me", headers=bearer(token)).status_code == 200
    finally:
        recorded.commit()
        in_flight.close()
    thread.join(timeout=15)
    done = answers["value"]
    assert (done.status_code == 200) if by == "token" else (done.exit_code == 0)
    assert served.test_client().get("/api/v1/me", headers=bearer(token)).status_code == 401
