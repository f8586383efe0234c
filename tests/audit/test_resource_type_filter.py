"""GET /api/v1/audit/events: a filter value the trail can never hold.

API.md "Conventions": unknown fields are rejected (422), never silently ignored; `action` and
`outcome` already answer 422 for a value outside their lists. `resource_type` is equally a
closed set: the service writes a fixed list of resource types (family, consent, referral,
referral_note, organization, oauth_client, access_token, audit_event, disclosures, ...).
A careful auditor expects a misspelt one to be refused, not answered with an empty page
that reads exactly like "nobody ever touched a referral".
"""

import pytest

from tests.conftest import assert_validation_error, bearer


@pytest.mark.parametrize("value", ["referal", "families", "Referral"])
def test_an_unknown_resource_type_is_422_not_an_empty_page(client, auditor, value):
    answer = client.get(f"/api/v1/audit/events?resource_type={value}", headers=bearer(auditor))
    assert_validation_error(answer, "resource_type")
