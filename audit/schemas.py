"""Schemas of the auditors' API."""

from datetime import timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from audit.chain import text_or_none
from audit.models import ACTIONS, OUTCOMES
from core.pagination import PageQuery, page_schema
from core.schemas import InputSchema, Instant, Timestamp

MAX_EXPORT_DAYS = 31



class ResourceSchema(Schema):
    type = fields.String()
    id = fields.String(allow_none=True)


class RequestSchema(Schema):
    id = fields.String(allow_none=True)
    method = fields.String(allow_none=True)
    path = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)


class AuditEventSchema(Schema):
    """One event of the trail, with the hashes that chain it."""

    seq = fields.Integer()
    id = fields.UUID()
    recorded_at = Timestamp()
    action = fields.String(metadata={"enum": list(ACTIONS)})
    outcome = fields.String(metadata={"enum": list(OUTCOMES)})
    reason = fields.String()
    actor = fields.Function(lambda e: {"organization_id": text_or_none(e.organization_id),
                                       "client_id": e.client_id,
                                       "token_id": text_or_none(e.token_id)},
                            metadata={"type": "object"})
    purpose = fields.String(allow_none=True)
    resource = fields.Function(lambda e: {"type": e.resource_type, "id": e.resource_id},
                               metadata={"type": "object"})
    family_id = fields.UUID(allow_none=True)
    family_ids = fields.List(fields.UUID(), metadata={
        "description": "Every family the event disclosed when it names several (a page of a "
                       "list); empty otherwise."})
    categories = fields.List(fields.String())
    consent_ids = fields.List(fields.String())
    request = fields.Function(lambda e: {"id": e.request_id, "method": e.request_method,
                                         "path": e.request_path, "ip": e.request_ip},
                              metadata={"type": "object"})
    prev_hash = fields.String()
    hash = fields.String()


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


class AuditEventQuery(PageQuery, _TimeRange):
    organization_id = fields.UUID()
    client_id = fields.String(validate=validate.Length(1, 64))
    family_id = fields.UUID()
    action = fields.String(validate=validate.OneOf(ACTIONS))
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    resource_type = fields.String(validate=validate.Length(1, 32))
    resource_id = fields.String(validate=validate.Length(1, 64))


class ExportQuery(_TimeRange):
    since = Instant(required=True, metadata={"description": "Inclusive."})
    until = Instant(required=True, metadata={"description": "Exclusive."})

    @validates_schema
    def _at_most_a_month(self, data, **kwargs):
        if data["until"] - data["since"] > timedelta(days=MAX_EXPORT_DAYS):
            raise ValidationError(f"Export at most {MAX_EXPORT_DAYS} days at once", "until")


class VerifyQuery(InputSchema):
    from_seq = fields.Integer(strict=False, validate=validate.Range(min=1, max=2**63 - 1))
    to_seq = fields.Integer(strict=False, validate=validate.Range(min=1, max=2**63 - 1))

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

    seq = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    hash = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    recorded_at = Instant(required=True)
    key_id = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{16}$"))
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

    seq = fields.Integer()
    recorded_at = Timestamp()
    organization_id = fields.UUID()
    action = fields.String(metadata={"enum": list(ACTIONS)})
    purpose = fields.String(allow_none=True)
    categories = fields.List(fields.String())
    consent_ids = fields.List(fields.String())
    resource = fields.Function(lambda e: {"type": e.resource_type, "id": e.resource_id},
                               metadata={"type": "object"})


DisclosurePageSchema = page_schema(DisclosureSchema, "DisclosurePage")


class DisclosureQuery(PageQuery, InputSchema):
    """`limit` and `cursor`."""
