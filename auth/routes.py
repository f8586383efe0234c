"""The OAuth endpoints (RFC 6749, 7009, 7662, 8414) and `/api/v1/me`."""

from flask import Blueprint, current_app, request

from auth.limits import oauth_limit
from auth.models import TOKEN_AUTH_METHODS
from auth.protect import current_actor, require_scope
from auth.schemas import (
    EmptySchema,
    IntrospectionSchema,
    MeSchema,
    OAuthErrorSchema,
    ServerMetadataSchema,
    TokenParameterSchema,
    TokenRequestSchema,
    TokenResponseSchema,
)
from auth.scopes import SCOPES
from auth.server import authorization_server
from core.docs import operation
from core.errors import Problem
from core.web import host_for_urls, respond

bp = Blueprint("auth", __name__)
TAGS = ["OAuth 2"]


@bp.post("/oauth/token")
@oauth_limit
@operation(summary="Issue an access token (client credentials)", tags=TAGS,
           form=TokenRequestSchema,
           responses={200: TokenResponseSchema, 400: OAuthErrorSchema, 401: OAuthErrorSchema})
def issue_token():
    """RFC 6749 section 4.4. Authenticate with HTTP Basic or with client_id/client_secret in the
    form, not both. Errors are RFC 6749 bodies, not problem+json: a parameter sent twice, two
    ways of authenticating, more than one Authorization header, or plain http to a host other
    than loopback, is 400 `invalid_request`; a blank or unknown `scope`, 400 `invalid_scope`."""
    return authorization_server().create_token_response()


@bp.post("/oauth/revoke")
@oauth_limit
@operation(summary="Revoke an access token (RFC 7009)", tags=TAGS, form=TokenParameterSchema,
           responses={200: EmptySchema, 400: OAuthErrorSchema, 401: OAuthErrorSchema})
def revoke_token():
    """200 for the client's own token and for an unknown one; another client's token is
    refused with 400 `invalid_grant` and stays valid. A parameter sent twice, or plain http to
    a host other than loopback, is 400 `invalid_request`, and nothing is revoked."""
    return authorization_server().create_endpoint_response("revocation")


@bp.post("/oauth/introspect")
@oauth_limit
@operation(summary="Introspect an access token (RFC 7662)", tags=TAGS,
           form=TokenParameterSchema,
           responses={200: IntrospectionSchema, 400: OAuthErrorSchema, 401: OAuthErrorSchema})
def introspect_token():
    """A client's own live token is described; any other token is `{"active": false}`. A
    parameter sent twice, or plain http to a host other than loopback, is 400
    `invalid_request`."""
    return authorization_server().create_endpoint_response("introspection")


@bp.get("/.well-known/oauth-authorization-server")
@operation(summary="Authorization server metadata (RFC 8414)", tags=TAGS,
           responses={200: ServerMetadataSchema})
def server_metadata():
    """Endpoints, scopes and authentication methods, as absolute URLs."""
    # The host as sent, not `host_url`, which decodes an IDNA host (RFC 8414 3.3: the issuer
    # is the very URL the client asked under).
    issuer = current_app.config["OAUTH_ISSUER"]
    # Shared caches may keep it only when it names the configured issuer: built from the
    # Host a caller sent, a cache keyed on less would serve a stranger's token endpoint to
    # every partner (a review).
    cache = "public, max-age=3600" if issuer else "no-store"
    if not issuer:
        host = host_for_urls()
        if host is None:  # the issuer would be `http://` (RFC 8414 2: a URL with a host)
            raise Problem("malformed-request", "The Host header is not a host name the "
                          "endpoints can be named by (behind a proxy, forward the client's; "
                          "or set OAUTH_ISSUER)")
        issuer = f"{request.scheme}://{host}"
    methods = list(TOKEN_AUTH_METHODS)
    metadata = {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": list(SCOPES),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "service_documentation": f"{issuer}/apidocs/",
    }
    return respond(ServerMetadataSchema, metadata, headers={"Cache-Control": cache})


@bp.get("/api/v1/me")
@require_scope()
@operation(summary="Who am I", tags=["Directory"], responses={200: MeSchema})
def me():
    """The calling organization's directory entry, the client and the token's scopes."""
    actor = current_actor()
    return respond(MeSchema, {"organization": actor.organization,
                                "client_id": actor.client_id, "scopes": sorted(actor.scopes)})
