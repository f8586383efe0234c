"""The request boundary: request ids, strict JSON and query parsing, one commit per request."""

import functools
import io
import ipaddress
import json
import logging
import re
import uuid
from urllib.parse import urlsplit

from flask import Flask, current_app, g, has_request_context, request
from flask.globals import request_ctx
from flask.sessions import SessionInterface
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import DBAPIError
from werkzeug.datastructures import MIMEAccept
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from core.db import BIGINT_MAX, begin_read_only, db
from core.errors import (
    Problem,
    allowed,
    database_problem,
    log_without_message,
    problem_response,
    unavailable,
    validation_problem,
)

log = logging.getLogger(__name__)

#: Matched whole (`fullmatch`): `$` alone would let a final line break through.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: Deeper JSON is refused before it is parsed into Python objects.
MAX_JSON_DEPTH = 32


def _assign_request_id():
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else str(uuid.uuid4())


#: A Host value as RFC 9110 7.2 reads it, RFC 3986's `host [":" port]`: an IP literal, or a
#: registered name (not empty, for http: RFC 9110 4.2.1). werkzeug reads fewer than these (no
#: `_`, no empty or zero-padded port): see `host_for_urls`.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)"
                   r"(?::[0-9]*)?")
_NOT_A_HOST = "The Host header is not a host name"


def _refuse_unreadable_envelope() -> None:
    """400 `malformed-request` for a request without a Host (HTTP/1.1) or with a Host value
    that is none (RFC 9112 3.2 says MUST), or a forwarded scheme that is not http(s); 404 for
    a path that spells a slash `%2F`. Checked on every route, before anything is read."""
    environ = request.environ
    host = environ.get("HTTP_HOST")
    if host is None:
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            # werkzeug would put the server's address in its place.
            raise Problem("malformed-request", "Send a Host header")
    elif not _HOST.fullmatch(host):
        raise Problem("malformed-request", _NOT_A_HOST)
    elif "xn--" in host.lower():
        try:
            request.host_url  # noqa: B018 (read for the error it raises; werkzeug keeps it)
        except UnicodeError:  # an IDNA label that decodes to nothing: a 500 where URLs are built
            raise Problem("malformed-request", _NOT_A_HOST) from None
    if request.scheme not in ("http", "https"):  # only a trusted proxy's X-Forwarded-Proto
        raise Problem("malformed-request", "The forwarded scheme is neither http nor https")
    # gunicorn decodes `%2F` in PATH_INFO into a slash: `/referrals/<id>%2Fevents` would be
    # the timeline, a URI RFC 3986 2.2 says is another (and a proxy's rule per path would let
    # it through as that other). The request target as sent keeps it.
    raw = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    if "://" in raw:  # the absolute form (RFC 9112 3.2.2): its path
        raw = urlsplit(raw).path
    # Nor an empty segment: werkzeug drops leading ones, so `//api/v1/audit/...` was served
    # past a proxy's rule for `/api/v1/audit`, and put on the trail as another path (a review).
    if "%2f" in raw.lower() or "//" in raw:
        raise Problem("not-found", "No such resource")
    # gunicorn takes the chunks off a body and leaves any other transfer coding on it: a body
    # sent gzip'ed (or mislabelled so) would be read as it came.
    coding = environ.get("HTTP_TRANSFER_ENCODING")
    if coding is not None and coding.strip().lower() != "chunked":
        raise Problem("malformed-request",
                      "Send the body with no transfer coding but chunked")


def host_for_urls() -> str | None:
    """The request's host as werkzeug reads it, for the URLs the service builds from it (the
    OAuth metadata's issuer; authlib's request URL); None where it reads none: a valid Host
    it does not take (`imh_web:8000`, as a proxy may forward its upstream's name; an empty
    port), or none at all over HTTP/1.0 on a UNIX socket."""
    return request.host or None


def concerns_family(family_id) -> None:
    """Name the family this request concerns, once the service has found it: a refusal
    recorded after the rollback, and a later replay of this request's answer, name it on the
    trail for the auditors (never for the caller). Outside a request (a command), nothing."""
    if has_request_context():
        g.family_id = family_id


def family_concerned():
    """The family this request concerns (`concerns_family`), if one was named."""
    return g.get("family_id")


def read_only(view):
    """Mark a view that only reads the database: its transaction begins as one (see
    `core.db.begin_read_only`), before the bearer token is looked up."""
    view.read_only = True
    return view


def _begin_read_only_view() -> None:
    if getattr(current_app.view_functions.get(request.endpoint), "read_only", False):
        begin_read_only()


def _finish(response):
    """Commit the request's one transaction when it succeeded; otherwise roll it back.

    After a rollback the `after_rollback` hooks run (audit records the denial in a fresh
    transaction). If a commit or a hook fails, nothing was disclosed: the answer is a 503, or
    a 500 when the database says the fault is the code's (core/dberrors.py).
    """
    try:
        if response.status_code < 400:
            db.session.commit()
            _after_commit()
        else:
            db.session.rollback()
            for hook in current_app.extensions.get("after_rollback", ()):
                hook(response)
    except DBAPIError as error:  # read as everywhere: an outage, or a fault of the code
        db.session.rollback()
        response = problem_response(database_problem(error))
    except Exception as error:
        db.session.rollback()
        log.error("commit failed: %s", type(error).__name__)
        response = problem_response(
            unavailable("The request could not be completed; retry shortly"))
    headers = response.headers
    headers["X-Request-ID"] = g.get("request_id") or str(uuid.uuid4())
    if response.status_code not in (429, 503):
        # Only a refusal that asks the client to wait carries Retry-After.
        headers.pop("Retry-After", None)
    _secure(headers)
    return response


#: On every response: no sniffing, framing, referrers or caching of family data by browsers.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
#: The API docs page runs its own scripts and styles, from this service only.
_DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")


_SECURITY_NAMES = {name.lower() for name in SECURITY_HEADERS}


def _secure(headers) -> None:
    """Add each of SECURITY_HEADERS that the response does not set itself (one pass over its
    headers: werkzeug's setdefault would scan them once per name)."""
    if request.path.startswith(("/apidocs", "/flasgger_static")):
        headers["Content-Security-Policy"] = _DOCS_POLICY
    present = {name.lower() for name, _ in headers} & _SECURITY_NAMES
    headers.extend([(name, value) for name, value in SECURITY_HEADERS.items()
                    if name.lower() not in present])


class _NoSessions(SessionInterface):
    """The API keeps no browser session: no cookie is read, signed or set."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response):
        return None


def _after_commit() -> None:
    # Housekeeping after the answer is safe: its failure must not turn a done request into an
    # error, so it is logged instead.
    for hook in current_app.extensions.get("after_commit", ()):
        try:
            hook()
        except Exception as error:
            db.session.rollback()
            log_without_message("after-commit hook failed", error)


def on_commit(app: Flask, hook) -> None:
    """Run `hook()` after a request's transaction committed; it may write and commit."""
    app.extensions.setdefault("after_commit", []).append(hook)


def on_rollback(app: Flask, hook) -> None:
    """Run `hook(response)` after a failed request's rollback; it may write and commit."""
    app.extensions.setdefault("after_rollback", []).append(hook)


def refuse_unknown_query() -> None:
    """A documented view that reads no query refuses any query parameter, as a body's unknown
    fields are refused (a view with a query schema refuses them when it loads it)."""
    view = current_app.view_functions.get(request.endpoint)
    described = getattr(view, "openapi", None)
    if request.args and described is not None and described["query"] is None:
        raise validation_problem({name: ["Unknown field."] for name in request.args})


def _read_whole_body() -> None:
    """Read the body here, whole, when the server vouches for its end (gunicorn's
    `wsgi.input_terminated`), since werkzeug then counts nothing: a chunked body (no
    Content-Length) would be cut at MAX_CONTENT_LENGTH without a word (a JSON body's tail
    dropped, a form's last fields lost), and a body shorter than its Content-Length (a client
    that hung up early) would be acted on as if whole. Over the limit 413; short or unreadable
    400."""
    environ = request.environ
    if "wsgi.input_terminated" not in environ:
        return  # werkzeug reads CONTENT_LENGTH bytes and refuses fewer
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    declared = request.content_length if environ.get("CONTENT_LENGTH") else None
    if declared == 0:
        return
    if declared is not None and declared > limit:
        raise Problem("payload-too-large", "The request body exceeds the size limit")
    try:
        body = environ["wsgi.input"].read(limit + 1 if declared is None else declared)
    except Exception as error:
        # The server reading the client's chunks failed: bad framing (gunicorn raises its own
        # ParseException kinds) or a client that hung up mid-body (NoMoreData, an OSError).
        # The client's request, not a fault of the service: no 500, no ERROR in the log.
        log.info("unreadable request body: %s (request %s)", type(error).__name__,
                 g.get("request_id"))
        detail = "The request body could not be read" + (
            ": send whole chunks, or a Content-Length" if declared is None else "")
        raise Problem("malformed-request", detail) from None
    if len(body) > limit:
        raise Problem("payload-too-large", "The request body exceeds the size limit")
    if declared is not None and len(body) < declared:
        log.info("request body shorter than its Content-Length (request %s)",
                 g.get("request_id"))
        raise Problem("malformed-request", "The request body ended before its Content-Length")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


#: Pages and files for browsers (the API docs' UI, static files): HTML, scripts and styles,
#: whatever a browser's Accept says. Everything else answers JSON, or what its documentation
#: names (the audit export's NDJSON).
_NOT_NEGOTIATED = ("/apidocs", "/flasgger_static", "/oauth2-redirect.html", "/static/")


def _answered_media_type() -> str | None:
    """What the requested view answers when it succeeds; None where nothing is negotiated (no
    such route or method: that answer is a problem, and says so)."""
    if request.endpoint is None or request.path.startswith(_NOT_NEGOTIATED):
        return None
    described = getattr(current_app.view_functions[request.endpoint], "openapi", None)
    for status, schema in (described or {}).get("responses", {}).items():
        if 200 <= status < 300 and isinstance(schema, tuple):  # (media type, schema)
            return schema[0]
    return "application/json"


def _refuse_unacceptable() -> None:
    """406 `not-acceptable` when the request's Accept admits nothing the view answers (RFC
    9110 12.5.1), before anything else is done. Without an Accept anything goes; a media
    range's parameters are not compared (JSON is UTF-8 whatever `charset` says). Accept is
    weighed against what a success answers, not against errors: a problem, this refusal
    included, is problem+json whatever Accept says."""
    accept = request.accept_mimetypes
    # OPTIONS answers no content (204), whatever the view's success would be.
    answered = _answered_media_type() if accept and request.method != "OPTIONS" else None
    if answered is None:
        return
    ranges = MIMEAccept([(value.split(";", 1)[0].strip(), quality) for value, quality in accept])
    if ranges.quality(answered) <= 0:
        raise Problem("not-acceptable",
                      f"This answers {answered}, which the Accept header does not admit")


def _refuse_head() -> None:
    """405 for HEAD on the API: Flask would run the GET view whole (a look at a family, and
    its audit event) and send none of it, so the trail would account a disclosure nobody
    saw. The API's reads are GETs."""
    if request.method == "HEAD" and request.path.startswith("/api/") and request.url_rule:
        raise Problem("method-not-allowed", "HEAD is not answered here: send GET",
                      headers={"Allow": _allowed_here()})


def _allowed_here() -> str:
    """The Allow header of the request's path: every route's methods on it, not only the
    matched one's (GET and POST of one path are two views)."""
    return allowed(request_ctx.url_adapter.allowed_methods())


def _answer_options():
    """OPTIONS: 204 with the methods the route answers, HEAD left out where it is refused
    (Flask's own answer offered it, with an empty HTML page)."""
    response = current_app.response_class(status=204)
    response.headers["Allow"] = _allowed_here()
    return response


class BigIntConverter(IntegerConverter):
    """`<bigint:name>`: a key of a BigInteger column, in ASCII digits (werkzeug's `int`
    takes other scripts' digits too, and any number of them, which the database cannot
    compare); anything else is no such path."""

    regex = r"[0-9]{1,19}"

    def __init__(self, map):
        super().__init__(map, max=BIGINT_MAX)


def init_app(app: Flask) -> None:
    """Install the request id, content negotiation, the body bound and the commit boundary;
    no browser sessions."""
    app.session_interface = _NoSessions()
    # werkzeug would answer `/api/v1//me` with a redirect (an HTML page, Location built from
    # the caller's Host), before authentication: an empty segment is just no such path.
    app.url_map.merge_slashes = False
    app.url_map.converters["bigint"] = BigIntConverter
    app.make_default_options_response = _answer_options
    app.before_request(_assign_request_id)
    app.before_request(_refuse_unreadable_envelope)
    app.before_request(_refuse_head)
    app.before_request(_refuse_unacceptable)
    app.before_request(_read_whole_body)
    app.before_request(_begin_read_only_view)
    app.after_request(_finish)
    behind_proxies(app)


def behind_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies, take the client's address (and scheme) from the
    X-Forwarded-For (and -Proto) they add, counting that many hops from the right: the audit
    trail's `request_ip` and the per-address token budgets are the caller's, not the proxy's.
    With none (the default), those headers are ignored: anyone could write them."""
    hops = app.config.get("TRUSTED_PROXIES", 0)
    if hops:
        app.wsgi_app = ProxyFix(_forwarded_values_read(app.wsgi_app), x_for=hops, x_proto=hops)


def _forwarded_values_read(wsgi_app):
    """What ProxyFix took from the trusted hop, as values and not text: the client's address
    only if it is an IP address (no IPv6 zone, which holds any text), else the proxy's; the
    scheme in lower case (RFC 3986 3.1: `HTTPS` is https). ProxyFix takes both as they come,
    and the audit trail, which holds no names nor free text and is never purged, records the
    address (a proxy that passes a client's header on, or one hop too many trusted, let a
    caller write anything there)."""

    def call(environ, start_response):
        environ["wsgi.url_scheme"] = environ["wsgi.url_scheme"].lower()
        forwarded = environ.get("REMOTE_ADDR")
        own = environ["werkzeug.proxy_fix.orig"]["REMOTE_ADDR"]
        if forwarded != own:
            try:
                address = ipaddress.ip_address(forwarded)
                if getattr(address, "scope_id", None) is not None:
                    raise ValueError("a zone is text")
                environ["REMOTE_ADDR"] = str(address)
            except ValueError:
                # Not the value: it is the caller's text.
                log.info("a forwarded client address is no IP address: the proxy's is kept "
                         "(is TRUSTED_PROXIES more than the proxies in front?)")
                environ["REMOTE_ADDR"] = own
        return wsgi_app(environ, start_response)

    return call


def content_coding() -> str | None:
    """The Content-Encoding the request's body is declared in, if any but `identity`: the
    service decodes none (RFC 9110 8.4), so such a body is not what it would read."""
    coding = request.headers.get("Content-Encoding", "").strip()
    return coding if coding and coding.lower() != "identity" else None


def require_json() -> None:
    """Raise 415 unless the request body is sent as application/json, with no content coding."""
    if request.mimetype != "application/json" or \
            request.mimetype_params.get("charset", "utf-8").lower() != "utf-8":
        # A body declared in another charset would be read as UTF-8 all the same.
        raise Problem("unsupported-media-type",
                      "Send the body as application/json (charset utf-8)")
    if content_coding():
        # RFC 7694 3: Accept-Encoding on the 415 names the codings the server takes.
        raise Problem("unsupported-media-type",
                      "Send the body as it is: no Content-Encoding is decoded here",
                      headers={"Accept-Encoding": "identity"})


def json_body() -> object:
    """The request body as JSON. Raises 415 for another media type, 400 when it is not JSON."""
    require_json()
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies here: 413 when larger
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_members,
                          parse_constant=_not_a_number)
    except RecursionError:  # the parser's own guard; 64 KiB caps how deep it can go
        raise Problem("malformed-request",
                      f"The JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as error:
        detail = "The body is not valid JSON"
        if isinstance(error, json.JSONDecodeError):
            detail += f" (line {error.lineno}, column {error.colno})"
        raise Problem("malformed-request", detail) from None
    _check_value(data)
    return data


def _not_a_number(literal: str):
    """RFC 8259 has no NaN nor Infinity, which Python's parser reads: not JSON."""
    raise ValueError(f"{literal} is not JSON")


def _members(pairs) -> dict:
    """A JSON object, refusing a member name given twice (RFC 7493): readers would disagree."""
    members = {}
    for name, value in pairs:
        if name in members:
            raise Problem("malformed-request", f"The member {name[:64]!r} appears twice")
        members[name] = value
    return members


def _check_value(value, depth: int = 1) -> None:
    """One walk of the parsed body: refuse nesting deeper than MAX_JSON_DEPTH, and NUL and
    unpaired surrogates, which no database stores faithfully."""
    if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
        raise Problem("malformed-request", f"The JSON nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise Problem("malformed-request", "Strings must not contain NUL (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Problem("malformed-request",
                          "Strings must be valid Unicode (no unpaired surrogates)") from None
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_value(name)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)


@functools.cache
def _instance(schema_class: type[Schema]) -> Schema:
    # Building a schema deep-copies its fields; build each once and reuse it (load and dump
    # keep no state on the instance).
    return schema_class()


def load_body(schema: type[Schema]) -> dict:
    """Parse and validate the JSON body; unknown fields are errors (422)."""
    schema = _instance(schema)
    data = json_body()
    if not isinstance(data, dict):
        raise validation_problem({"_schema": ["The body must be a JSON object"]})
    try:
        return schema.load(data)
    except ValidationError as error:
        raise validation_problem(error.messages) from None


def load_query(schema: type[Schema]) -> dict:
    """Parse and validate the query string; unknown and repeated parameters are errors (422)."""
    schema = _instance(schema)
    repeated = [key for key, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise validation_problem({key: ["Give this parameter once"] for key in repeated})
    with_nul = [key for key, value in request.args.items() if "\x00" in value]
    if with_nul:
        raise validation_problem({key: ["Must not contain NUL"] for key in with_nul})
    try:
        return schema.load(request.args.to_dict(flat=True))
    except ValidationError as error:
        raise validation_problem(error.messages, "The query has invalid parameters") from None


def respond(schema: type[Schema], obj, status=200, headers=None):
    """Dump `obj` with an output schema as a JSON response."""
    response = current_app.response_class(
        current_app.json.dumps(_instance(schema).dump(obj)), status=status,
        mimetype="application/json"
    )
    if headers:
        response.headers.update(headers)
    return response

