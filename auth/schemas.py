"""Schemas of the OAuth endpoints and of `/me`; they document the RFC bodies authlib writes."""

from marshmallow import INCLUDE, Schema, fields, validate

from auth.scopes import SCOPES
from organizations.schemas import OrganizationSchema


class _OAuthForm(Schema):
    """A form the OAuth endpoints read (authlib parses it; this documents it)."""

    class Meta:
        # RFC 6749 3.1 and 3.2: the server MUST ignore unrecognized request parameters.
        unknown = INCLUDE


class TokenRequestSchema(_OAuthForm):
    grant_type = fields.String(required=True, validate=validate.Equal("client_credentials"))
    scope = fields.String(metadata={"description": "Space-separated; narrows the client's scopes."})
    client_id = fields.String(metadata={"description": "With client_secret_post only."})
    client_secret = fields.String(load_only=True,
                                  metadata={"description": "With client_secret_post only."})


class TokenResponseSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})
    scope = fields.String(required=True)


class TokenParameterSchema(_OAuthForm):
    token = fields.String(required=True)
    # A hint only (RFC 7009 2.1, RFC 7662 2.1): every token is searched whatever it names, and
    # an empty hint is no hint; another value is refused with `unsupported_token_type`.
    token_type_hint = fields.String(validate=validate.OneOf(("access_token", "refresh_token",
                                                             "")))
    client_id = fields.String(metadata={"description": "With client_secret_post only."})
    client_secret = fields.String(load_only=True,
                                  metadata={"description": "With client_secret_post only."})


class IntrospectionSchema(Schema):
    active = fields.Boolean(required=True)
    scope = fields.String()
    client_id = fields.String()
    exp = fields.Integer()
    iat = fields.Integer()
    token_type = fields.String()


class OAuthErrorSchema(Schema):
    """RFC 6749 section 5.2 error body."""

    error = fields.String(required=True, metadata={"example": "invalid_client"})
    error_description = fields.String()


class EmptySchema(Schema):
    """An empty JSON object."""


class ServerMetadataSchema(Schema):
    """RFC 8414 authorization server metadata."""

    issuer = fields.String(required=True)
    token_endpoint = fields.String(required=True)
    revocation_endpoint = fields.String(required=True)
    introspection_endpoint = fields.String(required=True)
    scopes_supported = fields.List(fields.String(), required=True)
    grant_types_supported = fields.List(fields.String(), required=True)
    response_types_supported = fields.List(fields.String(), required=True)
    token_endpoint_auth_methods_supported = fields.List(fields.String(), required=True)
    revocation_endpoint_auth_methods_supported = fields.List(fields.String(), required=True)
    introspection_endpoint_auth_methods_supported = fields.List(fields.String(), required=True)
    service_documentation = fields.String()


class MeSchema(Schema):
    organization = fields.Nested(OrganizationSchema, required=True)
    client_id = fields.String(required=True)
    scopes = fields.List(fields.String(metadata={"enum": list(SCOPES)}), required=True)
