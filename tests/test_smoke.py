from tests.conftest import bearer


def test_me(client, make):
    org = make.organization()
    token = make.token(org, ["directory:read"])
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200, response.json
    assert response.json["organization"]["id"] == str(org.id)
