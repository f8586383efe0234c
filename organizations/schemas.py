"""Input, query and output schemas of the directory."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.pagination import PageQuery, page_schema
from core.schemas import (
    InputSchema,
    LanguageTag,
    QueryBoolean,
    StrictBoolean,
    Timestamp,
    text,
    unique_items,
)
from organizations.models import CAPACITY_STATUSES, ORGANIZATION_TYPES, WAITLISTS

_counties = dict(
    validate=[validate.Length(max=100), unique_items],
    metadata={"description": "Counties served, each one line, stripped of surrounding "
                             "spaces; the same county twice (case and spaces aside) is 422.",
              "example": ["Washtenaw"]},
)
_languages = dict(
    validate=[validate.Length(max=50), unique_items],
    metadata={"description": "Languages services are offered in (BCP 47, RFC 5646), kept "
                             "in canonical case (`ES-mx` is `es-MX`).",
              "example": ["en", "es"]},
)


class CapacitySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(CAPACITY_STATUSES))
    waitlist = fields.String(required=True, allow_none=True, validate=validate.OneOf(WAITLISTS),
                             metadata={"description": "How long the waitlist is; null unless "
                                                      "`status` is `waitlist`."})
    updated_at = Timestamp(required=True, dump_only=True,
                           metadata={"description": "When the capacity was last reported."})


class OrganizationSchema(Schema):
    """A directory entry as every organization in the network sees it: every member is always
    there, `capacity` null until first reported."""

    id = fields.UUID(required=True, dump_only=True)
    name = fields.String(required=True, dump_only=True)
    type = fields.String(required=True, dump_only=True,
                         metadata={"enum": list(ORGANIZATION_TYPES)})
    counties = fields.List(fields.String(), required=True, dump_only=True)
    languages = fields.List(fields.String(), required=True, dump_only=True)
    accepting_referrals = fields.Boolean(required=True, dump_only=True)
    capacity = fields.Nested(CapacitySchema, required=True, dump_only=True, allow_none=True,
                             metadata={"description": "Null until first reported."})


OrganizationPageSchema = page_schema(OrganizationSchema, "OrganizationPage")


class CapacityInputSchema(InputSchema):
    status = fields.String(required=True, validate=validate.OneOf(CAPACITY_STATUSES))
    waitlist = fields.String(
        allow_none=True, validate=validate.OneOf(WAITLISTS),
        metadata={"description": "Only with status `waitlist`; defaults to `unknown` there."},
    )

    @validates_schema
    def _waitlist_only_when_waitlisted(self, data, **kwargs):
        if data.get("waitlist") and data["status"] != "waitlist":
            raise ValidationError("Only a waitlist has a waitlist length", "waitlist")


class OrganizationCreateSchema(InputSchema):
    """What an operator gives for a new organization (`flask org create`)."""

    name = text(200, required=True)
    counties = fields.List(text(100), load_default=list, **_counties)
    languages = fields.List(LanguageTag(), load_default=list, **_languages)


class OrganizationUpdateSchema(InputSchema):
    """What an organization may change in its own listing."""

    accepting_referrals = StrictBoolean()
    counties = fields.List(text(100), **_counties)
    languages = fields.List(LanguageTag(), **_languages)
    capacity = fields.Nested(CapacityInputSchema)


class OrganizationListQuery(PageQuery, InputSchema):
    type = fields.String(validate=validate.OneOf(ORGANIZATION_TYPES),
                         metadata={"description": "Of this type."})
    county = text(100, metadata={
        "description": "Serves this county (case-insensitive, surrounding spaces aside)."})
    language = LanguageTag(metadata={
        "description": "Offers this language (BCP 47, case-insensitive), in any of its "
                       "variants: `es` finds `es`, `es-MX` and `es-419`; `es-MX` finds "
                       "`es-MX` and plain `es`, not `es-ES`.",
        "example": "es"})
    accepting_referrals = QueryBoolean(metadata={
        "description": "`true`: only organizations accepting referrals now; `false`: only "
                       "those that are not."})
    q = text(100, metadata={
        "description": "Part of the name, case and accents aside (`clinica` and `CLÍNICA` "
                       "find `Clínica`, `pena` finds `Peña`), whatever its Unicode form."})
