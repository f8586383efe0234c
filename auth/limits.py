"""The token endpoints' budgets, counted by core.limits: two of RATE_LIMIT_TOKEN's size.

A client that authenticates counts against its own; a request that authenticates no client
counts against the client id it claims at the address it comes from, counted before its
secret is checked (and given back once it authenticates), and refused while that one is used
up (one more round trip). Client ids are not secret: a stranger's wrong secrets must slow the
stranger, not lock the client out of its tokens (RFC 6819 4.4.1.11).
"""

import base64
import functools
import re
import uuid
from typing import NamedTuple
from urllib.parse import unquote_plus

from flask import g, request

from core.limits import count, reserve


class BasicCredentials(NamedTuple):
    """The client credentials of an HTTP Basic Authorization header (RFC 7617), the id and the
    secret each form-decoded (RFC 6749 2.3.1)."""

    #: None when the header cannot be read that far.
    client_id: str | None
    #: None when there is none (no colon) or it cannot be read.
    secret: str | None
    #: Not base64 of `id:secret` in UTF-8 with both readable: it authenticates no client.
    malformed: bool


_SPACE = re.compile(r"[ \t]+")


def basic_credentials(headers) -> BasicCredentials | None:
    """The credentials of the Authorization header when its scheme is Basic, read strictly (no
    other characters in the base64, UTF-8 only); None when it is absent or another scheme. The
    one reading of Basic: the budget, the checks before authentication and the server's
    `client_secret_basic` agree on who a request claims to be."""
    scheme, *token = _SPACE.split(headers.get("Authorization", "").strip(" \t"), maxsplit=1)
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token[0] if token else "", validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8
        return BasicCredentials(None, None, malformed=True)
    client_id, colon, secret = decoded.partition(":")
    client_id = _form_decoded(client_id) or None
    secret = _form_decoded(secret) if colon else None
    return BasicCredentials(client_id, secret, malformed=client_id is None or secret is None)


def _form_decoded(text: str) -> str | None:
    """`application/x-www-form-urlencoded` decoding (`+` is a space); None when the bytes it
    spells are not UTF-8."""
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        return None


def presented_client_id() -> str | None:
    """The client id a request to the token endpoints claims: the HTTP Basic one whenever the
    header names one, with a secret or not, else the form's `client_id`. A failed
    authentication is counted and recorded against it."""
    basic = basic_credentials(request.headers)
    client_id = basic.client_id if basic is not None else None
    return client_id or request.form.get("client_id") or None


def _unauthenticated() -> tuple[str, ...]:
    """The budget of the requests to the token endpoints that authenticate no client: the
    client id claimed, however it is spelled, at the request's address."""
    client_id = presented_client_id()
    if client_id is None:
        claimed = "no-client"
    else:
        try:
            # Other spellings of a UUID are unknown clients, but they count against the one
            # client they spell: re-spelling an id must not open a fresh budget.
            claimed = f"client:{uuid.UUID(client_id)}"
        except ValueError:
            claimed = f"client:{client_id[:64]}"
    return ("unauthenticated", claimed, f"address:{request.remote_addr}")


def count_authenticated_client(client_id: str) -> None:
    """Count a token endpoint request against the budget of the client it authenticated.
    Raises Problem 429 when it is used up."""
    g.oauth_client_counted = True
    count("RATE_LIMIT_TOKEN", f"client:{client_id}")


def oauth_limit(view):
    """Decorate a token endpoint: a request is counted against its client's budget once the
    client authenticates (`count_authenticated_client`), else against the failures of the
    client id it claims at its address, which refuse it before any secret is checked."""

    @functools.wraps(view)
    def counted(*args, **kwargs):
        give_back = reserve("RATE_LIMIT_TOKEN", *_unauthenticated())
        try:
            return view(*args, **kwargs)
        finally:
            # It authenticated: counted in its own budget, even when that refused it (429)
            # or the work failed after.
            if g.get("oauth_client_counted"):
                give_back()

    counted.rate_limited = True
    return counted
