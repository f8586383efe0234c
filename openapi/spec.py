"""Build the OpenAPI document from the app's routes, their scopes and their schemas."""

import copy
import re
from pathlib import Path

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema, fields

from auth.scopes import SCOPES
from consent.categories import CATEGORIES
from core.db import BIGINT_MAX
from core.errors import PROBLEMS
from core.schemas import (
    CONTROL_CHARACTERS,
    LINE_BREAKS,
    no_control_characters,
    one_line,
    unique_items,
    visible,
)

COMMITTED = Path(__file__).with_name("openapi.yaml")
API_VERSION = "1.0.0"
_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_PATH_TYPES = {"uuid": {"type": "string", "format": "uuid"},
               "bigint": {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX}}
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

_KEY_RULES = ("the same key with another body is 422 `idempotency-key-reused`; a retry "
              "while the first request is still under way may be 409 `conflict` (retry it "
              "again). Keys of different clients never collide.")
IDEMPOTENCY_KEY = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "Retrying with the same key and body within 24 hours returns the first "
                   "answer (with `Idempotent-Replayed: true`); " + _KEY_RULES,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-+.-~-]+$",
               "description": "No comma: two header lines arrive joined by one."},
}
#: The key of an operation whose replay renders the object as a read does now.
IDEMPOTENCY_KEY_REREAD = {
    **IDEMPOTENCY_KEY,
    "description": "Retrying with the same key and body within 24 hours answers the first "
                   "answer's status with the object created then, as a read shows it now "
                   "(with `Idempotent-Replayed: true`; family information is never replayed "
                   "from storage); " + _KEY_RULES,
}

_KEY_UNDER_WAY = ("`conflict`: another request with this Idempotency-Key was under way "
                  "and did not finish; retry it.")
#: What gunicorn answers itself, in its own HTML, to a request it will not pass on: limits
#: (gunicorn.conf.py) that no cursor or ETag the service issues comes near.
_SERVER_REFUSALS = {
    "414": {"description": "The request line (path and query string) is over 8,190 bytes. "
                           "Answered by the HTTP server before the service, as an HTML page.",
            "content": {"text/html": {"schema": {"type": "string"}}}},
    "431": {"description": "A header field is over 8,190 bytes, or there are over 100. "
                           "Answered by the HTTP server before the service, as an HTML page.",
            "content": {"text/html": {"schema": {"type": "string"}}}},
}
_ERROR_DESCRIPTIONS = {
    400: "The request could not be read: a body that is not JSON, nests too deep or ends before "
         "its Content-Length; no Host (HTTP/1.1), or a Host that is no host name.",
    401: "Missing, malformed, expired or revoked access token.",
    403: "The token lacks the scope, or the organization may not do this.",
    404: "No such object, or the organization may not know it exists.",
    406: "The Accept header admits nothing this operation answers on success (its 2xx media "
         "type). Without Accept, or with `*/*`, anything goes.",
    409: "The object's state does not allow this.",
    412: "If-Match names a version that is no longer current, or If-None-Match the current one.",
    413: "The body is larger than 64 KiB.",
    415: "The body is not application/json, or is sent in a Content-Encoding.",
    422: "Invalid fields, parameters or cursor; `errors` names each.",
    428: "If-Match is required.",
    429: "The client has used up its request budget; retry after `Retry-After` seconds.",
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
    missing_categories = fields.List(
        fields.String(metadata={"enum": list(CATEGORIES)}),
        metadata={"description": "For `consent-required`: the categories no consent in force "
                                 "lets pass."},
    )


#: A character `no_control_characters` lets through.
_NOT_CONTROL = f"[^{CONTROL_CHARACTERS}]"
#: ... and `one_line` too.
_NOT_CONTROL_NOR_BREAK = f"[^{CONTROL_CHARACTERS}{LINE_BREAKS}]"


def _shared_validators(self, field, ret=None, **kwargs) -> dict:
    """What apispec cannot read from the shared validators of core.schemas: unique items, and
    text without control characters (one line, for `text()` but its multi-line kind), and with
    something visible (`visible`; approximated as a non-space: the document's patterns
    cannot name Unicode categories)."""
    validators = getattr(field, "validators", ())
    keywords = {}
    if unique_items in validators:
        keywords["uniqueItems"] = True
    if no_control_characters in validators and (ret or {}).get("pattern") is None:
        allowed = _NOT_CONTROL_NOR_BREAK if one_line in validators else _NOT_CONTROL
        if visible in validators:
            shown = _NOT_CONTROL.replace("[^", r"[^\s", 1)
            keywords["pattern"] = f"^{allowed}*{shown}{allowed}*$"
        else:
            keywords["pattern"] = f"^{allowed}*$"
    return keywords


def _nullable(self, field, ret=None, **kwargs) -> dict:
    """What apispec leaves out of a nullable field in OpenAPI 3.0.3, where `nullable` needs a
    `type` beside it and an `enum` still applies (the "Clarify nullable" proposal,
    OAI/OpenAPI-Specification#1900): null among the values of an `enum` given in metadata
    (apispec adds it for `OneOf` only), and a null branch beside a nested schema that admits
    null alone (apispec's `{type: object, nullable: true}` admits any object)."""
    ret = ret or {}
    if not field.allow_none:
        return {}
    if "enum" in ret and None not in ret["enum"]:
        return {"enum": [*ret["enum"], None]}
    if "anyOf" in ret:
        null = {"type": "object", "nullable": True}
        others = [branch for branch in ret["anyOf"] if branch != null]
        return {"anyOf": [*others, {**null, "enum": [None]}]}
    return {}


#: Path parameters that are not `<thing>_id`.
_PATH_DESCRIPTIONS = {"seq": "The event's position in the audit chain (1, 2, 3, ...)."}


def _describe_path_parameter(name: str) -> str:
    """`family_id`: "The family's id." (what each path's id names, from its name)."""
    if name in _PATH_DESCRIPTIONS:
        return _PATH_DESCRIPTIONS[name]
    return f"The {name.removesuffix('_id').replace('_', ' ')}'s id."


def _path(rule) -> tuple[str, list[dict]]:
    parameters = []

    def replace(match):
        parameters.append({
            "in": "path", "name": match["name"], "required": True,
            "description": _describe_path_parameter(match["name"]),
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


def _authenticates_the_client(form) -> bool:
    """Whether an operation authenticates the OAuth client (RFC 6749 2.3.1): its form takes
    the client's secret, as the token, revocation and introspection endpoints' do."""
    return form is not None and "client_secret" in form._declared_fields


def _names_an_object(body) -> bool:
    """Whether a body must name another object by its id (a family, an organization): the
    object may not exist, or not be visible to the caller, which is 404 like a path's id."""
    if body is None:
        return False
    declared = body._declared_fields.values()
    return any(isinstance(field, fields.UUID) and field.required and not field.dump_only
               for field in declared)


def _header(description: str, schema: dict | None = None, *, required: bool = True) -> dict:
    return {"description": description, "required": required,
            "schema": schema or {"type": "string"}}


#: Headers described once, under components/headers, and referred to by the answers.
HEADERS = {
    "RequestId": _header("Echoes the request's X-Request-ID when it is 1 to 128 letters, "
                         "digits or `._:-`; otherwise, and without one, a generated UUID. "
                         "Written into the request's audit events, which are never changed: "
                         "send an opaque id, never anything about a family."),
    "WwwAuthenticate": _header("The authentication scheme the operation expects "
                               "(RFC 9110 11.6.1); `error` says what was wrong."),
    "WwwAuthenticateClient": _header("When the client's own authentication failed "
                                     "(`invalid_client`): the scheme to use.", required=False),
    "WwwAuthenticateScope": _header("With `insufficient-scope`: the scope the operation "
                                    "needs (RFC 6750 3.1).", required=False),
    "RetryAfterLimited": _header("Seconds until the client's budget is renewed.",
                                 {"type": "integer", "minimum": 0}),
    "RetryAfterUnavailable": _header("Seconds to wait before retrying.",
                                     {"type": "integer", "minimum": 0}),
    "RateLimitLimit": _header("Requests the client may make in the current window.",
                              {"type": "integer", "minimum": 0}, required=False),
    "RateLimitRemaining": _header("Requests left in the current window.",
                                  {"type": "integer", "minimum": 0}, required=False),
    "RateLimitReset": _header("When the client's budget is renewed (Unix time, seconds).",
                              {"type": "integer", "minimum": 0}),
    "IdempotentReplayed": _header("`true` when this is the first answer to a request "
                                  "repeated with the same `Idempotency-Key`.",
                                  {"type": "string", "enum": ["true"]}, required=False),
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/headers/{name}"}


#: Headers every answer of a status carries, whatever the operation.
_HEADERS_BY_STATUS = {
    401: {"WWW-Authenticate": _ref("WwwAuthenticate")},
    403: {"WWW-Authenticate": _ref("WwwAuthenticateScope")},
    429: {"Retry-After": _ref("RetryAfterLimited"), "X-RateLimit-Reset": _ref("RateLimitReset")},
    503: {"Retry-After": _ref("RetryAfterUnavailable")},
}
#: On the answers of a rate-limited operation that counted against the client's budget.
_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _ref("RateLimitLimit"),
    "X-RateLimit-Remaining": _ref("RateLimitRemaining"),
}


def _readable_objects(app: Flask) -> dict:
    """Output schema -> (path, ETag description) of the objects a GET reads by id: another
    answer carrying one of them carries its ETag too, and a 201 creating one its Location."""
    objects = {}
    for rule in app.url_map.iter_rules():
        meta = getattr(app.view_functions[rule.endpoint], "openapi", None)
        schema = meta and meta["responses"].get(200)
        if "GET" in rule.methods and rule.arguments and isinstance(schema, type):
            objects[schema] = (_path(rule)[0], meta["headers"].get(200, {}).get("ETag"))
    return objects


def _object_headers(status: int, schema, objects: dict) -> dict:
    """ETag and Location of the object an answer carries, as the object's own GET shows it."""
    if not (200 <= status < 300 and isinstance(schema, type)):
        return {}
    for readable, (path, etag) in objects.items():
        if issubclass(schema, readable):
            headers = {"ETag": _header(etag)} if etag else {}
            if status == 201:
                headers["Location"] = _header(f"Where the new object is read: `{path}`.",
                                              {"type": "string", "format": "uri-reference"})
            return headers
    return {}


def _operation(view, meta: dict, path_parameters: list[dict], *, rate_limited: bool,
               objects: dict) -> dict:
    scopes = getattr(view, "required_scopes", None)
    secured = scopes is not None
    # Every operation weighs Accept against what it answers (core.web._refuse_unacceptable),
    # and reads its Host (core.web._refuse_unreadable_envelope).
    statuses = set(meta["errors"]) | {400, 406, 500, 503}
    if secured:
        statuses.add(401)
        if scopes:
            statuses.add(403)
    # A secured view refuses query parameters it does not read (core.web.refuse_unknown_query).
    if secured or meta["query"] is not None or meta["body"] is not None:
        statuses.add(422)
    if meta["body"] is not None:
        statuses |= {413, 415}
    if meta["form"] is not None:  # MAX_CONTENT_LENGTH holds for forms too
        statuses.add(413)
    if path_parameters or _names_an_object(meta["body"]):
        statuses.add(404)
    if rate_limited:
        statuses.add(429)
    if getattr(view, "idempotent", False):
        statuses.add(409)  # the key's first request still under way (core/idempotency.py)

    responses = {}
    for status, schema in sorted(meta["responses"].items()):
        response = {"description": "OAuth 2 error (RFC 6749)" if status >= 400 else "OK"}
        response.update(_content(_JSON, schema))
        if status == 400:  # what is refused before OAuth reads it: a problem, as everywhere
            response["description"] += f"; or, as a problem: {_ERROR_DESCRIPTIONS[400]}"
            response["content"].update(_content(_PROBLEM, ProblemSchema)["content"])
        response["headers"] = _object_headers(status, schema, objects)
        response["headers"].update({name: _header(text)
                                    for name, text in meta["headers"].get(status, {}).items()})
        if status == 401:  # an OAuth error: authlib names the scheme for invalid_client only
            response["headers"]["WWW-Authenticate"] = _ref("WwwAuthenticateClient")
        if 200 <= status < 300 and getattr(view, "idempotent", False):
            response["headers"]["Idempotent-Replayed"] = _ref("IdempotentReplayed")
        responses[str(status)] = response
    for status in sorted(statuses):
        if str(status) not in responses:
            description = _ERROR_DESCRIPTIONS[status]
            if status == 409 and getattr(view, "idempotent", False):
                description = _KEY_UNDER_WAY if 409 not in meta["errors"] \
                    else f"{description} Or: {_KEY_UNDER_WAY}"
            responses[str(status)] = {"description": description,
                                      **_content(_PROBLEM, ProblemSchema)}
    for status, response in responses.items():
        # What the operation declares first, then what the status says, then the limits.
        headers = response.setdefault("headers", {})
        # An API call is counted once its token is known: never on a 401. Accept is weighed
        # before anything is counted: never on a 406.
        counted = rate_limited and status != "406" and not (status == "401" and secured)
        for name, header in (*_HEADERS_BY_STATUS.get(int(status), {}).items(),
                             *(_RATE_LIMIT_HEADERS.items() if counted else ())):
            headers.setdefault(name, header)
        headers["X-Request-ID"] = _ref("RequestId")
    # The HTTP server's own refusals, before the service sees the request (gunicorn.conf.py):
    # none of the service's headers, which it never adds to them.
    responses.update(copy.deepcopy(_SERVER_REFUSALS))

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
        operation["parameters"].append(
            IDEMPOTENCY_KEY_REREAD if getattr(view, "rereads", False) else IDEMPOTENCY_KEY)
    if meta["body"] is not None:
        operation["requestBody"] = {"required": True, **_content(_JSON, meta["body"])}
    if meta["form"] is not None:
        operation["requestBody"] = {
            "required": True, **_content("application/x-www-form-urlencoded", meta["form"])}
    if not operation["parameters"]:
        del operation["parameters"]
    if secured:
        operation["security"] = [{"oauth2": [scope]} for scope in scopes] or [{"oauth2": []}]
    elif _authenticates_the_client(meta["form"]):
        # HTTP Basic, or no HTTP authentication: `client_secret_post` carries the credentials
        # in the form (its `client_id` and `client_secret`), which no OpenAPI security scheme
        # can express. Basic alone would call that supported method unauthenticated.
        operation["security"] = [{"clientBasic": []}, {}]
    else:
        operation["security"] = []
    return operation


def build_spec(app: Flask) -> dict:
    """The OpenAPI 3 document of every documented route of `app`."""
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title="IMH Referral Network API",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[marshmallow],
        info={"description": DESCRIPTION,
              "license": {"name": "Apache-2.0"}},
    )
    marshmallow.converter.add_attribute_function(_shared_validators)
    marshmallow.converter.add_attribute_function(_nullable)
    spec.components.security_scheme("oauth2", {
        "type": "oauth2",
        "description": "Client credentials; every client acts for one organization.",
        "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": dict(SCOPES)}},
    })
    spec.components.security_scheme("clientBasic", {
        "type": "http", "scheme": "basic",
        "description": "The OAuth client's own authentication at the OAuth endpoints (RFC 6749 "
                       "2.3.1), `client_secret_basic`: the client id and secret, each "
                       "form-urlencoded, as the Basic user and password. The other way, never "
                       "together with this one, is `client_secret_post`: `client_id` and "
                       "`client_secret` in the form, with no HTTP authentication. Without "
                       "either, 401 `invalid_client`.",
    })
    spec.components.schema("Problem", schema=ProblemSchema)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    paths: dict[str, dict] = {}
    objects = _readable_objects(app)
    # Views whose calls count against a budget (auth/protect.py and auth/limits.py mark them).
    limited = {endpoint for endpoint, view in app.view_functions.items()
               if getattr(view, "rate_limited", False)}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "openapi", None)
        if meta is None:
            continue
        path, parameters = _path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                view, meta, parameters, rate_limited=rule.endpoint in limited, objects=objects)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def to_yaml(document: dict) -> str:
    """The document as the YAML committed in `openapi/openapi.yaml`."""
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)
