"""Rate limits per client (Flask-Limiter): counters in Redis when `REDIS_URL` is set, so every
worker and host counts together; in memory otherwise (one process: the embedded default)."""

from flask import Flask, current_app, g, request
from flask_limiter import Limiter


def _client_key() -> str:
    """The authenticated client; a limit checked before authentication counts the address."""
    actor = g.get("actor")
    return f"client:{actor.client_id}" if actor is not None else f"address:{request.remote_addr}"


def _presented_client() -> str:
    """The client a request to the token endpoints claims to be (Basic, else the form)."""
    auth = request.authorization
    client_id = auth.username if auth is not None and auth.type == "basic" else None
    client_id = client_id or request.form.get("client_id")
    return f"client:{client_id[:64]}" if client_id else f"address:{request.remote_addr}"


limiter = Limiter(key_func=_client_key, default_limits=[])

#: Every API call of one client, whatever the route: one budget, checked after authentication.
api_limit = limiter.shared_limit(lambda: current_app.config["RATE_LIMIT_API"], scope="api")
#: Token issue, introspection and revocation, per client claimed (a wrong secret counts too).
oauth_limit = limiter.shared_limit(lambda: current_app.config["RATE_LIMIT_OAUTH"],
                                   scope="oauth", key_func=_presented_client)


def init_app(app: Flask) -> None:
    """Bind the limiter; 429 answers carry Retry-After (rendered as problem+json)."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
    # Every limit here is a view's, checked after authentication by its decorator; the
    # extension's own before-request pass would evaluate an empty set of default limits on
    # every request (a tenth of a millisecond, a tenth of the cheapest request's time).
    checks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in checks:
        checks.remove(limiter._check_request_limit)
