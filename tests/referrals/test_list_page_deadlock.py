"""The list page that holds what expired, against a revocation (PostgreSQL, real
connections)."""

import pytest

from tests.conftest import Factory
from tests.race_support import (
    Gate,
    expired_pair,
    in_thread,
    run_until_done_or_blocked,
    skip_on_sqlite,
)


@pytest.mark.no_db
def test_a_revocation_and_a_receiver_s_list_page_do_not_deadlock(served):
    """Two open referrals of one family whose consent expired (nobody looked since), one page
    of the provider's that holds them as it comes to them, and one revocation of another
    consent of that family, which holds every open referral: both share or hold the family
    first, so one waits for the other and both answer 200 (no deadlock, no 503)."""
    skip_on_sqlite(served)
    net, low, high = expired_pair(served)
    # Another consent of the family, with another organization, still in force.
    other = Factory(served).consent(net.family, [net.clinic, net.stranger],
                                    categories=("identity",))

    answers = {}
    gate = Gate(served, low)  # another request moving the lower one, for a moment
    revoking = in_thread(lambda: served.test_client().post(
        f"/api/v1/consents/{other.id}/revoke", headers=net.as_clinic,
        json={"reason": "The family withdrew it."}), answers, "revoke")
    gate.wait_until_blocked(1)
    # The page holds the higher referral, then waits for the lower one (behind the
    # revocation); a page that does not wait ends here.
    listing, listed = run_until_done_or_blocked(served, lambda: served.test_client().get(
        "/api/v1/referrals?direction=received", headers=net.as_provider), blocked_backends=2)
    gate.open()
    revoking.join(30)
    listing.join(30)
    answers["list"] = listed["value"]
    statuses = {name: answers[name].status_code for name in ("revoke", "list")}
    assert statuses == {"revoke": 200, "list": 200}, {
        name: answers[name].get_json() for name in answers}
