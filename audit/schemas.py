"""Schemas of the auditors' API."""

import uuid
from datetime import timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from audit.models import ACTIONS, MAX_SEQ, OUTCOMES, RESOURCE_TYPES
from core.pagination import PageQuery, page_schema
from core.schemas import InputSchema, Instant, Pattern, QueryInteger, Timestamp

MAX_EXPORT_DAYS = 31



class _Flat(fields.Nested):
    """A nested object made of the event's own columns: the nested schema reads the event."""

    def get_value(self, obj, attr, accessor=None, default=None):
        return obj


class ActorSchema(Schema):
    """Who acted: the organization, through which client and token; null where unknown (a
    request without a valid token)."""

    organization_id = fields.UUID(required=True, allow_none=True)
    client_id = fields.String(required=True, allow_none=True, metadata={
        "description": "The OAuth client, or the client id claimed by a failed "
                       "authentication."})
    token_id = fields.UUID(required=True, allow_none=True)


class ResourceSchema(Schema):
    """What was acted on."""

    type = fields.String(required=True, attribute="resource_type", metadata={
        "example": "referral"})
    id = fields.String(required=True, allow_none=True, attribute="resource_id", metadata={
        "description": "Null when the action concerned no one object (a search, an export)."})


class RequestSchema(Schema):
    """The HTTP request that caused the event; null members outside a request (a command)."""

    id = fields.String(required=True, allow_none=True, attribute="request_id", metadata={
        "description": "The request's X-Request-ID."})
    method = fields.String(required=True, allow_none=True, attribute="request_method")
    path = fields.String(required=True, allow_none=True, attribute="request_path")
    ip = fields.String(required=True, allow_none=True, attribute="request_ip")


class AuditEventSchema(Schema):
    """One event of the trail, with the hashes that chain it."""

    seq = fields.Integer(required=True)
    id = fields.UUID(required=True)
    recorded_at = Timestamp(required=True)
    action = fields.String(required=True, metadata={"enum": list(ACTIONS)})
    outcome = fields.String(required=True, metadata={"enum": list(OUTCOMES)})
    reason = fields.String(required=True)
    actor = _Flat(ActorSchema, required=True)
    purpose = fields.String(required=True, allow_none=True)
    resource = _Flat(ResourceSchema, required=True)
    family_id = fields.UUID(required=True, allow_none=True)
    family_ids = fields.List(fields.UUID(), required=True, metadata={
        "description": "Every family the event disclosed when it names several (a page of a "
                       "list); empty otherwise."})
    categories = fields.List(fields.String(), required=True)
    consent_ids = fields.List(fields.String(), required=True)
    request = _Flat(RequestSchema, required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)


AuditEventPageSchema = page_schema(AuditEventSchema, "AuditEventPage")


class _TimeRange(InputSchema):
    since = Instant(
                                 metadata={"description": "RFC 3339 instant, inclusive."})
    until = Instant(
                                 metadata={"description": "RFC 3339 instant, exclusive."})

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("`until` must be after `since`", "until")


class _ResourceId(fields.String):
    """An object's id as the trail stores it: a UUID in the one spelling the service writes
    (lower case, hyphenated), however it was written (UUIDs are case-insensitive on input,
    RFC 9562 4); any other id (an audit event's seq) as given."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return value


class AuditEventQuery(PageQuery, _TimeRange):
    organization_id = fields.UUID(metadata={"description": "Events of this acting organization."})
    client_id = _ResourceId(validate=validate.Length(1, 64), metadata={
        "description": "Events of this OAuth client (or of a failed authentication claiming "
                       "it; one claiming no client the service has is in the application log, "
                       "not the trail); in capitals too."})
    family_id = fields.UUID(metadata={
        "description": "Events about this family, alone or among several (`family_ids`)."})
    action = fields.String(validate=validate.OneOf(ACTIONS),
                           metadata={"description": "Events of this action."})
    outcome = fields.String(validate=validate.OneOf(OUTCOMES),
                            metadata={"description": "Events with this outcome."})
    resource_type = fields.String(validate=validate.OneOf(RESOURCE_TYPES), metadata={
        "description": "Events on this kind of object (`resource.type`): "
                       + " ".join(f"`{name}`: {what}" for name, what in RESOURCE_TYPES.items()),
        "enum": list(RESOURCE_TYPES)})
    resource_id = _ResourceId(validate=validate.Length(1, 64), metadata={
        "description": "Events on the object with this id (`resource.id`); a UUID matches "
                       "in capitals too."})


class ExportQuery(_TimeRange):
    since = Instant(required=True, metadata={"description": "Inclusive."})
    until = Instant(required=True, metadata={"description": "Exclusive."})

    @validates_schema
    def _at_most_a_month(self, data, **kwargs):
        if data["until"] - data["since"] > timedelta(days=MAX_EXPORT_DAYS):
            raise ValidationError(f"Export at most {MAX_EXPORT_DAYS} days at once", "until")


class VerifyQuery(InputSchema):
    from_seq = QueryInteger(validate=validate.Range(min=1, max=MAX_SEQ),
                              metadata={"description": "First event to check; default 1."})
    to_seq = QueryInteger(validate=validate.Range(min=1, max=MAX_SEQ),
                            metadata={"description": "Last event to check; default the newest."})

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data.get("from_seq") and data.get("to_seq") and data["from_seq"] > data["to_seq"]:
            raise ValidationError("`to_seq` must not be before `from_seq`", "to_seq")


class HeadSchema(Schema):
    seq = fields.Integer(required=True)
    hash = fields.String(required=True)


class VerdictSchema(Schema):
    valid = fields.Boolean(required=True)
    checked = fields.Integer(required=True)
    first_bad_seq = fields.Integer(required=True, allow_none=True)
    reason = fields.String(required=True, allow_none=True)
    head = fields.Nested(HeadSchema, required=True)


class CheckpointSchema(Schema):
    seq = fields.Integer(required=True)
    hash = fields.String(required=True)
    recorded_at = Timestamp(required=True)
    key_id = fields.String(required=True)
    public_key = fields.String(required=True, metadata={"description": "Ed25519, raw, base64."})
    signature = fields.String(required=True, metadata={"description": "Ed25519, base64."})


class CheckpointInputSchema(InputSchema):
    """A checkpoint as the service gave it to the auditor."""

    seq = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_SEQ))
    hash = fields.String(required=True, validate=Pattern(r"^[0-9a-f]{64}$"))
    recorded_at = Instant(required=True)
    key_id = fields.String(required=True, validate=Pattern(r"^[0-9a-f]{16}$"))
    public_key = fields.String(required=True, validate=validate.Length(1, 64))
    signature = fields.String(required=True, validate=validate.Length(1, 128))


class CheckpointVerdictSchema(Schema):
    valid = fields.Boolean(required=True)
    reason = fields.String(required=True, allow_none=True)


class DisclosureSchema(Schema):
    """One disclosure of a family's information outside its custodian.

    No `family_ids`: an event that listed several families would name the others to this
    family's custodian, a disclosure of its own.
    """

    seq = fields.Integer(required=True)
    recorded_at = Timestamp(required=True)
    organization_id = fields.UUID(required=True)
    action = fields.String(required=True, metadata={"enum": list(ACTIONS)})
    purpose = fields.String(required=True, allow_none=True)
    categories = fields.List(fields.String(), required=True)
    consent_ids = fields.List(fields.String(), required=True)
    resource = _Flat(ResourceSchema, required=True)


DisclosurePageSchema = page_schema(DisclosureSchema, "DisclosurePage")


class DisclosureQuery(PageQuery, InputSchema):
    """`limit` and `cursor`."""
