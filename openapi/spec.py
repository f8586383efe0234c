"""Build the OpenAPI document from the app's routes, their scopes and their schemas."""

import re
from pathlib import Path

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema, fields

from auth.scopes import SCOPES
from core.errors import PROBLEMS

COMMITTED = Path(__file__).with_name("openapi.yaml")
API_VERSION = "1.0.0"
_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_PATH_TYPES = {"uuid": {"type": "string", "format": "uuid"}, "int": {"type": "integer"}}
_JSON = "application/json"
_PROBLEM = "application/problem+json"

DESCRIPTION = """\
The shared, auditable channel through which the professionals who first meet a baby's family
refer infants, toddlers and their caregivers to infant mental health providers, follow each
referral to its end, and prove afterwards that every look at a family's information was allowed.

Authenticate with OAuth 2 client credentials at `/oauth/token` and send
`Authorization: Bearer <token>`. Errors are RFC 9457 `application/problem+json` with a
`type` of `/problems/<slug>`; 422 answers name each invalid field in `errors`.
Problem types: """ + ", ".join(f"`{slug}`" for slug in PROBLEMS) + "."

IDEMPOTENCY_KEY = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "Retrying with the same key and body within 24 hours returns the first "
                   "answer (with `Idempotent-Replayed: true`); the same key with another body "
                   "is 422 `idempotency-key-reused`. Keys of different clients never collide.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}

_ERROR_DESCRIPTIONS = {
    400: "The body could not be read (malformed JSON, too deeply nested).",
    401: "Missing, malformed, expired or revoked access token.",
    403: "The token lacks the scope, or the organization may not do this.",
    404: "No such object, or the organization may not know it exists.",
    409: "The object's state does not allow this.",
    412: "If-Match names a version that is no longer current.",
    413: "The body is larger than 64 KiB.",
    415: "The body is not application/json.",
    422: "Invalid fields, parameters or cursor; `errors` names each.",
    428: "If-Match is required.",
    500: "Internal error; the request id helps the operators find it.",
    503: "The database is unreachable; retry after `Retry-After` seconds.",
}


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True, metadata={"example": "/problems/not-found"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(required=True, allow_none=True)
    request_id = fields.String(required=True, allow_none=True)
    errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "For 422: messages by field path (`capacity.status`)."},
    )


def _path(rule) -> tuple[str, list[dict]]:
    parameters = []

    def replace(match):
        parameters.append({
            "in": "path", "name": match["name"], "required": True,
            "schema": _PATH_TYPES.get(match["converter"] or "", {"type": "string"}),
        })
        return "{" + match["name"] + "}"

    return _CONVERTER.sub(replace, rule.rule), parameters


def _content(media_type: str, schema) -> dict:
    if schema is None:
        return {}
    if isinstance(schema, tuple):  # (media type, schema) for bodies that are not JSON
        media_type, schema = schema
    return {"content": {media_type: {"schema": schema}}}


def _operation(view, meta: dict, path_parameters: list[dict]) -> dict:
    scopes = getattr(view, "required_scopes", None)
    secured = scopes is not None
    statuses = set(meta["errors"]) | {500, 503}
    if secured:
        statuses.add(401)
        if scopes:
            statuses.add(403)
    if meta["query"] is not None or meta["body"] is not None:
        statuses.add(422)
    if meta["body"] is not None:
        statuses |= {400, 413, 415}
    if path_parameters:
        statuses.add(404)

    responses = {}
    for status, schema in sorted(meta["responses"].items()):
        response = {"description": "OAuth 2 error (RFC 6749)" if status >= 400 else "OK"}
        response.update(_content(_JSON, schema))
        if meta["headers"].get(status):
            response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                   for name, text in meta["headers"][status].items()}
        responses[str(status)] = response
    for status in sorted(statuses):
        if str(status) not in responses:
            responses[str(status)] = {"description": _ERROR_DESCRIPTIONS[status],
                                      **_content(_PROBLEM, ProblemSchema)}
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = {
            "description": "Echoes the request's X-Request-ID, or a generated one.",
            "schema": {"type": "string"},
        }

    operation = {
        "operationId": view.__name__,
        "summary": meta["summary"],
        "tags": meta["tags"],
        "parameters": list(path_parameters) + list(meta["parameters"]),
        "responses": responses,
    }
    if meta["description"]:
        operation["description"] = meta["description"]
    if meta["query"] is not None:
        operation["parameters"].append({"in": "query", "schema": meta["query"]})
    if getattr(view, "idempotent", False):
        operation["parameters"].append(IDEMPOTENCY_KEY)
    if meta["body"] is not None:
        operation["requestBody"] = {"required": True, **_content(_JSON, meta["body"])}
    if meta["form"] is not None:
        operation["requestBody"] = {
            "required": True, **_content("application/x-www-form-urlencoded", meta["form"])}
    if not operation["parameters"]:
        del operation["parameters"]
    if secured:
        operation["security"] = [{"oauth2": [scope]} for scope in scopes] or [{"oauth2": []}]
    else:
        operation["security"] = []
    return operation


def build_spec(app: Flask) -> dict:
    """The OpenAPI 3 document of every documented route of `app`."""
    spec = APISpec(
        title="IMH Referral Network API",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION,
              "license": {"name": "Apache-2.0"}},
    )
    spec.components.security_scheme("oauth2", {
        "type": "oauth2",
        "description": "Client credentials; every client acts for one organization.",
        "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": dict(SCOPES)}},
    })
    spec.components.schema("Problem", schema=ProblemSchema)
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "openapi", None)
        if meta is None:
            continue
        path, parameters = _path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(view, meta, parameters)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def to_yaml(document: dict) -> str:
    """The document as the YAML committed in `openapi/openapi.yaml`."""
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)
