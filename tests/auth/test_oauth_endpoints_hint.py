"""An unsupported token_type_hint is a bad parameter (400), not failed authentication (401)."""

import pytest

from tests.conftest import basic


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
def test_an_unsupported_token_type_hint_is_400(client, make, endpoint):
    oauth_client, secret = make.client()
    response = client.post(endpoint, data={"token": "x", "token_type_hint": "id_token"},
                           headers=basic(oauth_client.id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "unsupported_token_type"
    for hint in ("access_token", "refresh_token"):
        answered = client.post(endpoint, data={"token": "x", "token_type_hint": hint},
                               headers=basic(oauth_client.id, secret))
        assert answered.status_code == 200
