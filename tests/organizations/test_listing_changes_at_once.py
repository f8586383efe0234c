"""Two changes of one listing at once take turns (PostgreSQL, real connections): one that set
no precondition, or `If-Match: *`, is never refused for the other's change."""

import pytest
import sqlalchemy as sa

from core.db import db
from organizations.models import Organization
from tests.conftest import Factory, bearer
from tests.race_support import run_until_done_or_blocked, skip_on_sqlite


@pytest.mark.no_db
@pytest.mark.parametrize("if_match", [None, "*"])
def test_a_change_that_waited_for_another_is_made_on_what_that_one_left(served, if_match):
    skip_on_sqlite(served)
    make = Factory(served)
    provider = make.organization(name="Riverbend IMH")
    token = make.token(provider, ["directory:write"])
    client = served.test_client()
    with served.app_context():
        engine = db.engine
    other = engine.connect()
    other_change = other.begin()
    # Another request's change of the listing, not yet committed.
    other.execute(sa.update(Organization).where(Organization.id == provider.id)
                  .values(languages=["en", "es"], version=Organization.version + 1))
    headers = bearer(token) | ({"If-Match": if_match} if if_match else {})

    thread, answers = run_until_done_or_blocked(
        served, lambda: client.patch(f"/api/v1/organizations/{provider.id}",
                                     json={"accepting_referrals": True}, headers=headers),
        blocked_backends=1)
    assert "value" not in answers  # it waits its turn
    other_change.commit()
    other.close()
    thread.join(timeout=15)

    answer = answers["value"]
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert (answer.json["accepting_referrals"], answer.json["languages"]) == (True, ["en", "es"])
