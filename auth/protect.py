"""Guarding the API: `require_scope` on every route, `current_actor()` inside it."""

import functools
import logging
import uuid
from dataclasses import dataclass

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import g, request

from auth.scopes import unknown_scopes
from auth.server import find_bearer
from core import limits
from core.errors import INVALID_TOKEN_CHALLENGE, Problem
from core.web import refuse_unknown_query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who is calling: an organization, through one of its clients, with one token."""

    organization_id: uuid.UUID
    client_id: str
    token_id: uuid.UUID
    scopes: frozenset[str]
    #: The organization's directory entry (a dict), read with the token in one query.
    organization: dict


class HashedBearerTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return find_bearer(token_string)


class _Presented:
    """What authlib's bearer validation reads of a request: its headers, so the token comes
    from the Authorization header alone (never the query string or the body)."""

    __slots__ = ("headers",)

    def __init__(self, headers):
        self.headers = headers


# authlib's framework-neutral protector: its Flask one would also build a full OAuth2 request
# (URL, form, JSON body) on every API call, of which the bearer check reads only the header.
_protector = ResourceProtector()
_protector.register_token_validator(HashedBearerTokenValidator())


def _uses_bearer(headers) -> bool:
    """Whether the Authorization header names the Bearer scheme (case-insensitive, RFC 9110
    11.1), well formed or not."""
    parts = headers.get("Authorization", "").split(None, 1)
    return bool(parts) and parts[0].lower() == "bearer"


def authenticate(any_of: tuple[str, ...]) -> Actor:
    """Validate the bearer token from the Authorization header and one of the scopes.

    Raises Problem 401 (`unauthorized`) or 403 (`insufficient-scope`).
    """
    try:
        # The token alone; its scope is checked below.
        token = _protector.validate_request(None, _Presented(request.headers))
    except OAuth2Error:
        if not _uses_bearer(request.headers):
            # RFC 6750 3.1: no bearer authentication at all (no Authorization header, or
            # another scheme) gets the challenge without an error code: no token was bad.
            log.info("request without a bearer token (request %s, address %s)",
                     g.get("request_id"), request.remote_addr)
            raise Problem("unauthorized",
                          "Send an access token: Authorization: Bearer <token>") from None
        log.info("request with an invalid, expired or revoked token (request %s, address %s)",
                 g.get("request_id"), request.remote_addr)
        raise Problem(
            "unauthorized", "The access token is invalid, expired or revoked",
            headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
        ) from None
    actor = Actor(
        organization_id=token.organization["id"],
        client_id=str(token.client_id),
        token_id=token.id,
        scopes=frozenset(token.scope.split()),
        organization=token.organization,
    )
    # Set before the scope check: a refusal of a known actor is recorded in the audit trail.
    g.actor = actor
    # One budget per client across every route, counted once the client is known and before
    # anything else: a refused scope is recorded in the trail, so it must count too.
    limits.count("RATE_LIMIT_API", f"client:{actor.client_id}")
    if any_of and actor.scopes.isdisjoint(any_of):
        raise Problem(
            "insufficient-scope",
            f"This operation needs the scope {' or '.join(any_of)}",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", '
                                         f'scope="{" ".join(any_of)}"'},
        )
    return actor


def require_scope(*any_of: str):
    """Decorate a view: a valid token with any one of these scopes (none given: any token)."""
    unknown = unknown_scopes(any_of)
    if unknown:
        raise ValueError(f"unknown scopes {unknown}")

    def decorator(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            authenticate(any_of)
            refuse_unknown_query()  # after authentication: a stranger learns nothing first
            return view(*args, **kwargs)

        guarded.required_scopes = any_of
        guarded.rate_limited = True
        return guarded

    return decorator


def current_actor() -> Actor:
    """The authenticated actor of this request; only valid inside a `require_scope` view."""
    return g.actor
