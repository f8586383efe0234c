"""The OpenAPI document: valid, complete, served, and equal to the committed file."""

import json

import pytest
from openapi_spec_validator import validate

from auth.scopes import SCOPES
from openapi.spec import COMMITTED, build_spec, to_yaml

pytestmark = pytest.mark.no_db

UNDOCUMENTED = {"health.healthz", "health.readyz", "static", "openapi", "flasgger.static",
                "flasgger.apidocs", "flasgger.oauth_redirect", "flasgger.<lambda>"}


@pytest.fixture(scope="module")
def document(app):
    return build_spec(app)


def test_the_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"] == "3.0.3"


def test_the_committed_document_is_what_the_code_generates(document):
    assert COMMITTED.read_text() == to_yaml(document), (
        "openapi/openapi.yaml is stale: run `flask --app app openapi write`")


def test_the_served_document_is_the_generated_one(app, document):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.data) == json.loads(json.dumps(document))


def test_the_ui_is_served(app):
    response = app.test_client().get("/apidocs/")
    assert response.status_code == 200
    assert b"swagger" in response.data.lower()


def test_every_route_is_documented(app, document):
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED or rule.endpoint.startswith("flasgger."):
            continue
        path = rule.rule.replace("<uuid:", "{").replace("<int:", "{").replace("<", "{")
        path = path.replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is undocumented"


def test_every_api_operation_declares_its_scope_and_auth_errors(document):
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            assert operation["security"], f"{method} {path} has no security requirement"
            assert "401" in operation["responses"]
            for requirement in operation["security"]:
                assert set(requirement["oauth2"]) <= set(SCOPES)
            if any(requirement["oauth2"] for requirement in operation["security"]):
                assert "403" in operation["responses"]


def test_the_security_scheme_lists_the_scope_registry(document):
    flows = document["components"]["securitySchemes"]["oauth2"]["flows"]
    assert flows["clientCredentials"]["scopes"] == SCOPES
    assert flows["clientCredentials"]["tokenUrl"] == "/oauth/token"


def test_request_bodies_reject_unknown_fields(document):
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schemas[ref]["additionalProperties"] is False, f"{method} {path}"
