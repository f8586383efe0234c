"""Input and output schemas of family records."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from consent.categories import CATEGORIES, PURPOSES
from core.pagination import PageQuery, page_schema
from core.schemas import CalendarDate, InputSchema, LanguageTag, StrictBoolean, text, unique_items
from core.time import now
from families.models import CONTACT_METHODS, RELATIONSHIPS

E164 = validate.Regexp(r"^\+[1-9][0-9]{6,14}$", error="Not an E.164 phone number (+17345550101)")


def _not_in_the_future(value):
    if value > now().date():
        raise ValidationError("A birth date cannot be in the future")


# -- output --------------------------------------------------------------------------------

class ChildSchema(Schema):
    """`identity`: shown whole, or not at all."""

    given_name = fields.String(required=True)
    family_name = fields.String(required=True)
    birth_date = CalendarDate(required=True)
    county = fields.String(required=True, allow_none=True)


class CaregiverSchema(Schema):
    """Only `id` is always shown; the other members as their categories are permitted."""

    id = fields.UUID(required=True)
    given_name = fields.String()
    family_name = fields.String()
    relationship = fields.String(metadata={"enum": list(RELATIONSHIPS)})
    has_legal_authority = fields.Boolean()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class ContactPreferencesSchema(Schema):
    """`contact`: shown whole, or not at all."""

    do_not_contact = fields.Boolean(required=True)
    methods = fields.List(fields.String(metadata={"enum": list(CONTACT_METHODS)}),
                          required=True)
    best_times = fields.String(required=True, allow_none=True)


class FamilySchema(Schema):
    """A family record as the caller may see it: withheld categories are absent and named."""

    id = fields.UUID(required=True)
    custodian_organization_id = fields.UUID(required=True)
    child = fields.Nested(ChildSchema, metadata={"description": "Category `identity`."})
    caregivers = fields.List(fields.Nested(CaregiverSchema), metadata={
        "description": "Names, relationship and legal authority are `identity`; phone and "
                       "email are `contact`; `id` is always shown."})
    preferred_language = fields.String(allow_none=True, metadata={"description": "`contact`"})
    interpreter_needed = fields.Boolean(metadata={"description": "`contact`"})
    cultural_considerations = fields.String(allow_none=True,
                                            metadata={"description": "`contact`"})
    contact_preferences = fields.Nested(ContactPreferencesSchema,
                                        metadata={"description": "`contact`"})
    redacted = fields.List(fields.String(metadata={"enum": list(CATEGORIES)}), required=True,
                           metadata={"description": "Categories withheld from this caller."})


class DuplicateWarningSchema(Schema):
    code = fields.String(required=True, metadata={"enum": ["possible_duplicate"]})
    detail = fields.String(required=True)
    family_ids = fields.List(fields.UUID(), required=True)


class FamilyCreatedSchema(FamilySchema):
    warnings = fields.List(fields.Nested(DuplicateWarningSchema), required=True, metadata={
        "description": "Likely duplicates among the caller's own families (same child name "
                       "and birth date); never another organization's."})


FamilyPageSchema = page_schema(FamilySchema, "FamilyPage")


# -- input ---------------------------------------------------------------------------------

class ChildInputSchema(InputSchema):
    given_name = text(100, required=True)
    family_name = text(100, required=True)
    birth_date = CalendarDate(required=True, validate=_not_in_the_future)
    county = text(100, allow_none=True)


class CaregiverInputSchema(InputSchema):
    id = fields.UUID(metadata={"description": "On update: the caregiver to keep and change."})
    given_name = text(100, required=True)
    family_name = text(100, required=True)
    relationship = fields.String(required=True, validate=validate.OneOf(RELATIONSHIPS))
    has_legal_authority = StrictBoolean(load_default=False, metadata={
        "description": "A parent, legal guardian or court-appointed caregiver: may consent."})
    phone = fields.String(allow_none=True, validate=E164)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))


class ContactPreferencesInputSchema(InputSchema):
    do_not_contact = StrictBoolean(load_default=False)
    methods = fields.List(fields.String(validate=validate.OneOf(CONTACT_METHODS)),
                          load_default=list, validate=unique_items)
    best_times = text(500, allow_none=True)


class FamilyInputSchema(InputSchema):
    child = fields.Nested(ChildInputSchema, required=True)
    caregivers = fields.List(fields.Nested(CaregiverInputSchema), required=True,
                             validate=validate.Length(1, 10))
    preferred_language = LanguageTag(allow_none=True)
    interpreter_needed = StrictBoolean(load_default=False)
    cultural_considerations = text(2000, allow_none=True, metadata={
        "description": "In the family's own words (line breaks kept)."})
    contact_preferences = fields.Nested(ContactPreferencesInputSchema)

    @validates_schema
    def _caregiver_ids_once(self, data, **kwargs):
        ids = [c["id"] for c in data.get("caregivers", []) if "id" in c]
        if len(ids) != len(set(ids)):
            raise ValidationError("A caregiver id appears twice", "caregivers")


class FamilyCreateSchema(FamilyInputSchema):
    """A new family record; caregivers take no ids, the service assigns them."""

    @validates_schema
    def _no_caregiver_ids(self, data, **kwargs):
        if any("id" in c for c in data.get("caregivers", [])):
            raise ValidationError("New caregivers take no id", "caregivers")


class FamilyUpdateSchema(FamilyInputSchema):
    """Every field optional; a nested object given is given whole. `caregivers`, when given,
    is the whole list: items with an `id` change that caregiver, items without one are added,
    caregivers left out are removed."""

    child = fields.Nested(ChildInputSchema)
    caregivers = fields.List(fields.Nested(CaregiverInputSchema),
                             validate=validate.Length(1, 10))
    # No default here: a field left out of a PATCH stays as it is.
    interpreter_needed = StrictBoolean()


class FamilyListQuery(PageQuery, InputSchema):
    """`limit` and `cursor`."""


class FamilyReadQuery(InputSchema):
    purpose = fields.String(load_default="care_coordination",
                            validate=validate.OneOf(list(PURPOSES)),
                            metadata={"description": "Why the caller reads the record."})
