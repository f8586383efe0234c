"""Input and output schemas of consents and consent decisions."""

from marshmallow import Schema, fields, validate

from consent.categories import CATEGORIES, PURPOSES
from consent.models import LEGAL_AUTHORITIES, METHODS, REQUESTERS
from core.pagination import PageQuery, page_schema
from core.schemas import (
    InputSchema,
    Instant,
    LanguageTag,
    StrictBoolean,
    Timestamp,
    text,
    unique_items,
)

_categories = fields.List(fields.String(validate=validate.OneOf(list(CATEGORIES))),
                          required=True, validate=[validate.Length(1, len(CATEGORIES)),
                                                   unique_items])
_purposes = fields.List(fields.String(validate=validate.OneOf(list(PURPOSES))),
                        required=True, validate=[validate.Length(1, len(PURPOSES)),
                                                 unique_items])


class GrantorSchema(Schema):
    caregiver_id = fields.UUID(metadata={
        "description": "`identity`: only a caregiver with legal authority grants, so the id "
                       "tells which caregiver holds it. Absent, and `identity` named in "
                       "`redacted`, for an organization no consent lets see it."})
    legal_authority = fields.String(metadata={
        "enum": list(LEGAL_AUTHORITIES),
        "description": "`identity` information the consent's recorder wrote (a court's "
                       "appointment tells of a court): absent, and `identity` named in "
                       "`redacted`, for an organization no consent lets see it."})


class ConsentSchema(Schema):
    """A recorded consent; `status` is derived from the time of the request. Every member is
    always there but the family facts its recorder wrote, `grantor.caregiver_id` and
    `grantor.legal_authority` (`identity`), `explained_in_language` and `interpreter_used`
    (`contact`): shown to the
    recorder, and to anyone else, the custodian included, only under a consent in force naming
    it and the recorder, else absent and their category named in `redacted`; and
    `revocation_reason` (free text, for the family's custodian and the revoker alone)."""

    id = fields.UUID(required=True)
    family_id = fields.UUID(required=True)
    grantor = fields.Nested(GrantorSchema, required=True)
    organization_ids = fields.List(fields.UUID(), required=True)
    purposes = fields.List(fields.String(metadata={"enum": list(PURPOSES)}), required=True)
    categories = fields.List(fields.String(metadata={"enum": list(CATEGORIES)}), required=True)
    effective_at = Timestamp(required=True)
    expires_at = Timestamp(required=True)
    method = fields.String(required=True, metadata={"enum": list(METHODS)})
    signed_at = Timestamp(required=True)
    explained_in_language = fields.String(metadata={"description": "`contact`"})
    interpreter_used = fields.Boolean(metadata={"description": "`contact`"})
    revocation_rights_explained = fields.Boolean(required=True)
    recorded_by_organization_id = fields.UUID(required=True)
    recorded_at = Timestamp(required=True)
    status = fields.String(required=True,
                           metadata={"enum": ["active", "expired", "revoked", "pending"]})
    revoked_at = Timestamp(required=True, allow_none=True)
    revocation_reason = fields.String(allow_none=True, metadata={
        "description": "Shown to the family's custodian and to the organization that recorded "
                       "the revocation; absent for the others."})
    revocation_requested_by = fields.String(required=True, allow_none=True,
                                            metadata={"enum": list(REQUESTERS)})
    redacted = fields.List(fields.String(metadata={"enum": list(CATEGORIES)}), required=True,
                           metadata={"description": "Categories of family information withheld "
                                                    "from this caller."})


ConsentPageSchema = page_schema(ConsentSchema, "ConsentPage")


class GrantorInputSchema(InputSchema):
    caregiver_id = fields.UUID(required=True, metadata={
        "description": "A caregiver of this family with legal authority."})
    legal_authority = fields.String(required=True, validate=validate.OneOf(LEGAL_AUTHORITIES),
                                    metadata={"description": "`parent` only for a caregiver "
                                              "recorded as `mother`, `father` or `other`: a "
                                              "grandparent, foster parent, kinship caregiver or "
                                              "legal guardian holds authority as a guardian or "
                                              "by a court."})


class ConsentInputSchema(InputSchema):
    """A consent as the family gave it. It is never edited afterwards."""

    grantor = fields.Nested(GrantorInputSchema, required=True)
    organization_ids = fields.List(fields.UUID(), required=True,
                                   validate=[validate.Length(2, 20), unique_items],
                                   metadata={"description": "The organizations that may "
                                             "share with each other; the recorder among them."})
    purposes = _purposes
    categories = _categories
    effective_at = Instant(metadata={
        "description": "Default: now (or `signed_at`, when that is a moment ahead of the "
                       "service's clock)."})
    expires_at = Instant(required=True, metadata={
        "description": "After effective_at, and at most CONSENT_MAX_DAYS (366) after "
                       "signed_at: one signature authorizes sharing that long at most."})
    method = fields.String(required=True, validate=validate.OneOf(METHODS))
    signed_at = Instant(required=True)
    explained_in_language = LanguageTag(required=True)
    interpreter_used = StrictBoolean(required=True)
    revocation_rights_explained = StrictBoolean(
        required=True, validate=validate.Equal(True, error="The right to revoke must have "
                                                           "been explained"))


class RevocationInputSchema(InputSchema):
    reason = text(1000, multiline=True, required=True)
    requested_by = fields.String(load_default="caregiver", validate=validate.OneOf(REQUESTERS))
    caregiver_id = fields.UUID(metadata={
        "description": "The caregiver who asked, if known: one of this family's, and with "
                       "`requested_by: caregiver` one with legal authority for the child "
                       "(anyone else's wish is the organization's request). Named only by an "
                       "organization that may see the family's `identity`; for anyone else "
                       "it is 422 whatever it names (leave it out)."})


class ConsentListQuery(PageQuery, InputSchema):
    """`limit` and `cursor`."""


class DecisionInputSchema(InputSchema):
    family_id = fields.UUID(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(list(PURPOSES)))
    categories = _categories


class DecisionSchema(Schema):
    decision = fields.String(required=True, metadata={"enum": ["permit", "deny"]})
    permitted_categories = fields.List(fields.String(), required=True)
    consent_ids = fields.List(fields.UUID(), required=True)
    reason = fields.String(required=True)
