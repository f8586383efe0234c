"""Accept (RFC 9110 12.5.1): a request whose Accept admits nothing a route answers is 406
`not-acceptable`; what admits it, or no Accept at all, is answered as always."""

import pytest

from tests.conftest import assert_problem, basic, bearer

EXPORT = "/api/v1/audit/export?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z"

#: Accept headers that admit application/json.
ADMITS_JSON = [
    None, "*/*", "application/*", "application/json", "application/json;q=0.001",
    "APPLICATION/JSON", "application/json; charset=utf-8",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser's
    "application/*;q=0, application/json",
]
#: Accept headers that do not.
REFUSES_JSON = [
    "application/xml", "text/html", "text/*", "application/json;q=0", "*/*;q=0",
    "application/json;q=0, */*", "application/problem+json", "application/x-ndjson",
]


@pytest.fixture
def token(make):
    return make.token(make.organization(), ["directory:read", "audit:read"])


def accept(value) -> dict:
    return {} if value is None else {"Accept": value}


@pytest.mark.parametrize("value", REFUSES_JSON)
def test_an_accept_that_excludes_json_is_406_not_acceptable(client, token, value):
    """The refusal is problem+json, as every problem is, whatever Accept says."""
    response = client.get("/api/v1/me", headers=bearer(token) | accept(value))

    assert_problem(response, 406, "not-acceptable")


@pytest.mark.parametrize("value", ADMITS_JSON)
def test_an_accept_that_admits_json_is_answered(client, token, value):
    response = client.get("/api/v1/me", headers=bearer(token) | accept(value))

    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"


@pytest.mark.parametrize(("value", "status"), [
    ("application/x-ndjson", 200), ("application/*", 200), ("*/*", 200), (None, 200),
    ("application/json", 406), ("application/problem+json", 406),
])
def test_the_export_negotiates_ndjson(client, token, value, status):
    response = client.get(EXPORT, headers=bearer(token) | accept(value))

    assert response.status_code == status, response.get_data(as_text=True)
    if status == 406:
        assert_problem(response, 406, "not-acceptable")
    else:
        assert response.mimetype == "application/x-ndjson"


def test_a_problem_is_problem_json_when_accept_admits_only_json(client, token):
    """Accept is weighed against what a success answers: an error is still problem+json."""
    response = client.get("/api/v1/organizations/00000000-0000-4000-8000-000000000000",
                          headers=bearer(token) | accept("application/json"))

    assert_problem(response, 404, "not-found")


def test_accept_is_weighed_before_authentication(client):
    """Nothing is done for a request whose answer the client could not read, a stranger's
    included: 406, not 401."""
    response = client.get("/api/v1/me", headers=accept("application/xml"))

    assert_problem(response, 406, "not-acceptable")


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/oauth/token"), ("POST", "/oauth/revoke"), ("POST", "/oauth/introspect"),
    ("GET", "/.well-known/oauth-authorization-server"), ("GET", "/openapi.json"),
    ("GET", "/healthz"), ("GET", "/readyz"),
])
def test_the_json_routes_outside_the_api_negotiate_json_too(client, make, method, path):
    """The OAuth endpoints, the server metadata, the OpenAPI document and the health checks
    answer application/json: an Accept that excludes it is 406; one that admits it is
    answered."""
    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    form = {"grant_type": "client_credentials"} if path == "/oauth/token" else {"token": "x"}

    def call(value):
        if method == "GET":
            return client.get(path, headers=accept(value))
        return client.post(path, data=form,
                           headers=basic(oauth_client.client_id, secret) | accept(value))

    refused, answered = call("text/html"), call("application/json")

    assert_problem(refused, 406, "not-acceptable")
    assert answered.status_code == 200, answered.get_data(as_text=True)
    assert answered.mimetype == "application/json"


def test_the_api_docs_page_is_not_negotiated(client):
    """The docs UI answers HTML to browsers; Accept does not turn it away."""
    response = client.get("/apidocs/", headers=accept("text/html"))

    assert response.status_code == 200


def test_every_operation_documents_406(client):
    document = client.get("/openapi.json").json
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            refusal = operation["responses"].get("406")
            assert refusal is not None, f"{method} {path}"
            assert list(refusal["content"]) == ["application/problem+json"], f"{method} {path}"
