"""One error shape: every failure leaves as RFC 9457 problem+json with the request id."""

import logging
import traceback

from flask import Flask, g, request
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from core.dberrors import Kind, diagnose

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: The protection space of every challenge the service sends (RFC 9110 11.5): the API's
#: Bearer one and the OAuth endpoints' Basic one.
REALM = "imh-referral-network"
#: The challenge to a bearer token that is invalid, expired or revoked (RFC 6750 3.1).
INVALID_TOKEN_CHALLENGE = f'Bearer realm="{REALM}", error="invalid_token"'

#: slug -> (status, title). The slugs partner agencies code against (API.md, Conventions).
PROBLEMS = {
    "validation-error": (422, "The request is not valid"),
    "malformed-request": (400, "The request could not be read"),
    "not-found": (404, "Not found"),
    "unauthorized": (401, "Authentication required"),
    "insufficient-scope": (403, "The access token lacks the scope this operation needs"),
    "forbidden": (403, "This organization may not do this"),
    "consent-required": (403, "No active family consent permits this"),
    "invalid-transition": (409, "This transition is not allowed from the current status"),
    "precondition-required": (428, "If-Match is required"),
    "precondition-failed": (412, "The object has changed since it was read"),
    "conflict": (409, "Conflict"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used with another request"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "The request body must be application/json"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "rate-limited": (429, "Too many requests"),
    "service-unavailable": (503, "The service is temporarily unavailable"),
    "internal-error": (500, "Internal error"),
}

_SLUG_BY_STATUS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    429: "rate-limited",
    503: "service-unavailable",
}


class Problem(Exception):
    """An answer the client can act on; raised anywhere, rendered by the one handler."""

    def __init__(self, slug, detail=None, *, errors=None, headers=None, status=None, audit=None,
                 **extra):
        super().__init__(slug)
        #: What the audit trail should say of this refusal (action, resource, family, ...).
        self.audit = audit or {}
        default_status, self.title = PROBLEMS[slug]
        self.slug = slug
        self.status = status or default_status
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


def unavailable(detail: str, *, retry_after: int = 5) -> Problem:
    """503 `service-unavailable`: nothing was done, and the client may retry after
    `retry_after` seconds."""
    return Problem("service-unavailable", detail, headers={"Retry-After": str(retry_after)})


def flatten_messages(messages, prefix="") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into {"field.path": [messages]}."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": messages}
    if isinstance(messages, str):
        return {prefix or "_schema": [messages]}
    flat: dict[str, list[str]] = {}
    items = messages.items() if isinstance(messages, dict) else enumerate(messages)
    for key, value in items:
        # A nested object's `_schema` message is about the object as a whole: name the object.
        path = prefix if key == "_schema" and prefix else f"{prefix}.{key}".lstrip(".")
        flat.update(flatten_messages(value, path))
    return flat


def validation_problem(messages, detail="The request has invalid fields", *,
                       audit=None) -> Problem:
    """A 422 naming every invalid field; `audit`: what the trail says of it (see Problem)."""
    return Problem("validation-error", detail, errors=flatten_messages(messages), audit=audit)


def problem_response(problem: Problem):
    """Render a Problem as a Flask response."""
    from flask import current_app

    g.problem = problem
    body = {
        "type": f"/problems/{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.path if request else None,
        "request_id": g.get("request_id"),
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    body.update(problem.extra)
    response = current_app.response_class(
        current_app.json.dumps(body), status=problem.status, mimetype=PROBLEM_MEDIA_TYPE
    )
    response.headers.update(problem.headers)
    if problem.status == 401:
        response.headers.setdefault("WWW-Authenticate", f'Bearer realm="{REALM}"')
    return response


def allowed(methods) -> str:
    """An Allow header's value for a route's `methods`: the API answers no HEAD (see
    `core.web._refuse_head`), so it does not offer it."""
    if request.path.startswith("/api/"):
        methods = set(methods) - {"HEAD"}
    return ", ".join(sorted(methods))


def _from_http_exception(error: HTTPException) -> Problem:
    status = error.code or 500
    slug = _SLUG_BY_STATUS.get(status, "internal-error" if status >= 500 else "malformed-request")
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = allowed(error.valid_methods)
    detail = {
        404: "No such resource",
        405: f"{request.method} is not allowed here",
        413: "The request body exceeds the size limit",
    }.get(status)
    return Problem(slug, detail, headers=headers, status=status)


#: What the service logs, and answers (503 `service-unavailable`: detail, Retry-After), for
#: each reason a database did not do a request's work (core/dberrors.py). Nothing of the
#: request was done, and it answers again once the cause is gone. The log names the driver's
#: error class, never its message, which can carry family data.
_DATABASE_NOT_READY = {
    # The database is there, this request met concurrent ones: retry at once.
    Kind.BUSY: (logging.WARNING, "database refused the transaction: %s",
                "The request met concurrent changes of the same records and was not done; "
                "retry it", 1),
    # Served before `flask db upgrade`.
    Kind.SCHEMA_BEHIND: (logging.ERROR, "database schema is not at the newest migration: %s; "
                                        "run `flask db upgrade`",
                         "The database schema is not at the newest migration; retry shortly",
                         5),
    # Met by a request that must write (its audit event, at least): once the service is
    # pointed at the primary.
    Kind.READ_ONLY: (logging.ERROR, "database refuses writes: %s",
                     "The database accepts no writes now; retry shortly", 5),
    # A grant taken away (say on the audit sealer's function): the operator's to mend, not
    # the client's mistake.
    Kind.NO_PRIVILEGE: (logging.ERROR, "database refuses the service's role: %s",
                        "The database refuses this work now; retry shortly", 5),
    Kind.UNREACHABLE: (logging.ERROR, "database unavailable: %s",
                       "The database is unreachable; retry shortly", 5),
}


#: SQLSTATE of the trail's refusal of an event under a token revoked while its request ran
#: (migration 0020): the client's credentials ended, not the database.
REVOKED_WHILE_RUNNING = "IM401"


def database_problem(error: DBAPIError) -> Problem:
    """The answer to a database error, logged: 401 when the request's token was revoked while
    it ran; 503 with Retry-After when the database could not do the work (core/dberrors.py);
    else a 500 (a fault of the code)."""
    if getattr(error.orig, "sqlstate", None) == REVOKED_WHILE_RUNNING:
        log.info("request whose access token was revoked while it ran (request %s)",
                 g.get("request_id"))
        return Problem("unauthorized",
                       "The access token was revoked while the request ran; nothing was done",
                       headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE})
    diagnosis = diagnose(error)
    if diagnosis is None:
        log_without_message("database error", error)
        return Problem("internal-error", "An internal error occurred")
    level, logged, detail, retry_after = _DATABASE_NOT_READY[diagnosis.kind]
    log.log(level, logged, type(error.orig).__name__)
    return unavailable(detail, retry_after=retry_after)


def register_error_handlers(app: Flask) -> None:
    """Route every exception through problem+json."""

    @app.errorhandler(Problem)
    def _problem(error: Problem):
        return problem_response(error)

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError):
        return problem_response(validation_problem(error.messages))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return problem_response(_from_http_exception(error))

    @app.errorhandler(StaleDataError)
    def _stale(error: StaleDataError):
        # Another request changed the object between our read and our write.
        return problem_response(Problem("precondition-failed",
                                        "The object changed while this request ran; read it "
                                        "again and retry"))

    @app.errorhandler(DBAPIError)
    def _database(error: DBAPIError):
        return problem_response(database_problem(error))

    @app.errorhandler(PoolTimeout)
    def _no_connection(error: PoolTimeout):
        # Every pooled connection stayed busy past the pool's wait (a slow or stalled
        # database, more threads than connections): nothing of this request was done.
        log.error("no database connection free: %s", type(error).__name__)
        return problem_response(unavailable("The service is busy; retry shortly"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log_without_message("unhandled error", error)
        return problem_response(Problem("internal-error", "An internal error occurred"))


def log_without_message(what: str, error: BaseException) -> None:
    """Log where an error happened, never its message: messages can carry family data."""
    # File, line and function only: a source line or a message could hold a value.
    where = "\n".join(f"  {frame.filename}:{frame.lineno} in {frame.name}"
                      for frame in traceback.extract_tb(error.__traceback__)[-20:])
    log.error("%s: %s (request %s)\n%s", what, type(error).__name__, g.get("request_id"), where)

