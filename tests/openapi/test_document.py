"""The OpenAPI document: valid, complete, served, and equal to the committed file."""

import json
import uuid

import pytest
from openapi_schema_validator import OAS30WriteValidator
from openapi_spec_validator import validate

from auth.scopes import SCOPES
from openapi.spec import COMMITTED, build_spec, to_yaml
from tests.openapi.validation import schema_errors

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
        path = rule.rule.replace("<uuid:", "{").replace("<bigint:", "{").replace("<", "{")
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


def _nodes(node, path="#"):
    """Every object of the document, with where it is."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, f"{path}/{index}")


def test_a_nullable_enum_lists_null(document):
    """OpenAPI 3.0.3 ("Clarify nullable", OAI/OpenAPI-Specification#1900): an enum still
    applies to a nullable schema, so null must be one of its values."""
    nullable_enums = [(path, node) for path, node in _nodes(document)
                      if node.get("nullable") and "enum" in node]

    assert [path for path, node in nullable_enums if None not in node["enum"]] == []
    assert any(path.endswith("/Consent/properties/revocation_requested_by")
               for path, _ in nullable_enums)


def test_the_null_branch_of_a_nullable_object_admits_null_alone(document):
    null_branches = [(path, branch) for path, node in _nodes(document)
                     for branch in node.get("anyOf", ()) if branch.get("nullable")]

    assert null_branches  # Organization.capacity, Referral.part_c, ...
    assert [path for path, branch in null_branches
            if branch != {"type": "object", "nullable": True, "enum": [None]}] == []


ENTRY = {"id": str(uuid.uuid4()), "name": "Riverbend", "type": "imh_provider",
         "counties": [], "languages": [], "accepting_referrals": True}
REFERRAL = {"family_id": str(uuid.uuid4()), "to_organization_id": str(uuid.uuid4()),
            "reasons": ["feeding_concerns"], "urgency": "routine",
            "shared_categories": ["identity"]}


@pytest.mark.parametrize(("capacity", "valid"), [
    (None, True),
    ({"status": "waitlist", "waitlist": "1_3_months", "updated_at": "2026-03-02T14:05:09Z"},
     True),
    ({"status": "closed_forever", "colour": "blue"}, False),
    ({}, False),
])
def test_a_directory_entrys_capacity_is_null_or_a_capacity(document, capacity, valid):
    errors = schema_errors(document, {"$ref": "#/components/schemas/Organization"},
                           {**ENTRY, "capacity": capacity})

    assert (errors == []) is valid, errors


@pytest.mark.parametrize(("part_c", "valid"), [
    (None, True),
    ({"identified_on": "2026-03-02"}, True),
    ({"identified": "yesterday"}, False),
])
def test_a_referrals_part_c_is_null_or_a_part_c(document, part_c, valid):
    schema = document["paths"]["/api/v1/referrals"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]

    errors = schema_errors(document, schema, {**REFERRAL, "part_c": part_c},
                           validator=OAS30WriteValidator)

    assert (errors == []) is valid, errors


def test_every_parameter_is_described(document):
    undescribed = [f"{method.upper()} {path} {parameter['in']}:{parameter['name']}"
                   for path, operations in document["paths"].items()
                   for method, operation in operations.items()
                   for parameter in operation.get("parameters", [])
                   if not parameter.get("description")]

    assert undescribed == []


def test_path_ids_say_what_they_name(document):
    parameters = {parameter["name"]: parameter["description"]
                  for operations in document["paths"].values()
                  for operation in operations.values()
                  for parameter in operation.get("parameters", []) if parameter["in"] == "path"}

    assert parameters["family_id"] == "The family's id."
    assert parameters["organization_id"] == "The organization's id."
    assert "audit chain" in parameters["seq"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_the_oauth_endpoints_require_the_clients_authentication(document, path):
    """RFC 6749 2.3.1: each answers 401 `invalid_client` without it (tests/auth). HTTP Basic,
    or the credentials in the form (`client_secret_post`), which OpenAPI can only state as no
    HTTP authentication beside the form's own `client_id` and `client_secret`."""
    schemes = document["components"]["securitySchemes"]
    form = document["paths"][path]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"]["schema"]

    assert document["paths"][path]["post"]["security"] == [{"clientBasic": []}, {}]
    assert {"client_id", "client_secret"} <= set(
        document["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]["properties"])
    assert schemes["clientBasic"]["type"] == "http"
    assert schemes["clientBasic"]["scheme"] == "basic"
    assert "client_secret_post" in schemes["clientBasic"]["description"]
    # Their metadata, which tells a client how to authenticate, needs nothing.
    assert document["paths"]["/.well-known/oauth-authorization-server"]["get"]["security"] \
        == []


def test_the_http_servers_own_refusals_are_documented_and_no_valid_cursor_meets_them(
        document):
    """gunicorn refuses a request line or a header field over 8,190 bytes itself, 414 or 431
    in HTML, before the service: each operation says so. A cursor the document admits is
    ASCII of at most 4,096 characters, so it always fits (a 1,400-character cursor of "é",
    which the document admitted, was 16 KB on the request line: 414)."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status in ("414", "431"):
                assert "text/html" in operation["responses"][status]["content"], (method, path)
                # gunicorn answers them before the service: none of its headers.
                assert not operation["responses"][status].get("headers"), (method, path)
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter.get("name") == "cursor":
                    assert schema["pattern"] == "^[A-Za-z0-9_.\\-]+$"
                    assert schema["maxLength"] + len(path) + 200 < 8190
                if parameter.get("name") == "If-Match":
                    assert schema["maxLength"] <= 1024


def test_a_consents_longest_term_is_documented_as_the_service_counts_it(document):
    """From its signature, in the operation and in the field alike: the operation said from
    when it takes effect, and a partner following it had consents refused (a review)."""
    operation = document["paths"]["/api/v1/families/{family_id}/consents"]["post"]
    field = document["components"]["schemas"]["ConsentInput"]["properties"]["expires_at"]
    assert "after signed_at" in field["description"]
    assert "after it was signed (`signed_at`)" in operation["description"]
    assert "takes effect" not in operation["description"]
