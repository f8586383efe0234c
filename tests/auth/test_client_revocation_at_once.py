"""Two operators revoking one client at once (PostgreSQL, real connections): the second finds
the first's revocation, and changes and records nothing (found by a race review)."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from auth.models import OAuthClient
from core.db import db
from tests.conftest import Factory, audit_events
from tests.race_support import run_until_done_or_blocked, skip_on_sqlite


@pytest.mark.no_db
def test_a_revocation_that_waited_for_another_changes_nothing(served):
    skip_on_sqlite(served)
    make = Factory(served)
    oauth_client, _ = make.client(make.organization(), ["directory:read"])
    with served.app_context():
        engine = db.engine
    first = engine.connect()
    first_revocation = first.begin()
    revoked_first = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    first.execute(sa.update(OAuthClient).where(OAuthClient.id == oauth_client.id)
                  .values(revoked_at=revoked_first))

    def second():
        return served.test_cli_runner().invoke(args=["client", "revoke", str(oauth_client.id)])

    thread, answers = run_until_done_or_blocked(served, second, blocked_backends=1)
    assert "value" not in answers  # it waits for the first
    first_revocation.commit()
    first.close()
    thread.join(timeout=15)

    assert answers["value"].exit_code == 0, answers["value"].output
    with served.app_context():
        assert db.session.get(OAuthClient, oauth_client.id).revoked_at == revoked_first
        assert audit_events(action="revoke", resource_type="oauth_client") == []
