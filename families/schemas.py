"""Input and output schemas of family records."""

from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from consent.categories import CATEGORIES, PURPOSES
from core.pagination import PageQuery, page_schema
from core.schemas import (
    CalendarDate,
    InputSchema,
    Instant,
    LanguageTag,
    Pattern,
    StrictBoolean,
    Timestamp,
    text,
    unique_items,
)
from core.time import today as clock_today
from families.models import CONTACT_METHODS, RELATIONSHIPS

E164 = Pattern(r"^\+[1-9][0-9]{6,14}$", error="Not an E.164 phone number (+17345550101)")
#: A child record: older than this, a birth date is a typing error (a caregiver's, a year
#: typed as 1926 for 2026).
CHILD_YEARS = 18


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February, in a year without one
        return day.replace(year=day.year - years, day=28)


def _a_childs_birth_date(value):
    today = clock_today()
    if value > today:
        raise ValidationError("A birth date cannot be in the future")
    earliest = _years_before(today, CHILD_YEARS)
    if value < earliest:
        raise ValidationError(f"A child's birth date is at most {CHILD_YEARS} years ago "
                              f"(on or after {earliest.isoformat()})")


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
    relationship_description = fields.String(allow_none=True)
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
    updated_at = Timestamp(metadata={
        "description": "When the record last changed (its creation is its first change); "
                       "shown to its custodian only."})


class DuplicateWarningSchema(Schema):
    code = fields.String(required=True, metadata={"enum": ["possible_duplicate"]})
    detail = fields.String(required=True)
    family_ids = fields.List(fields.UUID(), required=True)


class FamilyWithWarningsSchema(FamilySchema):
    """A family as its custodian recorded or changed it, with what it should look at."""

    warnings = fields.List(fields.Nested(DuplicateWarningSchema), required=True, metadata={
        "description": "Likely duplicates among the caller's own families (same child name, "
                       "whatever its case, Unicode form or surrounding spaces, and birth "
                       "date); never another organization's. On a change, named when it sent "
                       "`child`."})


FamilyPageSchema = page_schema(FamilySchema, "FamilyPage")


# -- input ---------------------------------------------------------------------------------
#
# Create and update take separate schemas: a record is created whole, with defaults for what
# is left out; a PATCH changes only the members it sends, down into `child`,
# `contact_preferences` and each caregiver, and defaults nothing (a default there would reset
# what the partner did not mean to touch: a mother's legal authority, a do-not-contact wish).

_BIRTH_DATE = {"validate": _a_childs_birth_date, "metadata": {
    "description": f"Not in the future, and at most {CHILD_YEARS} years ago: a child's."}}
_DESCRIPTION = {"metadata": {
    "description": "Who the caregiver is, in the family's own words (`godmother`, `father's "
                   "partner`): any relationship may carry one, `other` most of all."}}
_AUTHORITY = "A parent, legal guardian or court-appointed caregiver: may consent."
_CONTACT_PREFERENCES = ("`do_not_contact: true` takes no `methods` (the record would "
                        "contradict itself): 422.")
_CULTURAL = {"metadata": {"description": "In the family's own words (line breaks kept)."}}


class ChildInputSchema(InputSchema):
    given_name = text(100, required=True)
    family_name = text(100, required=True)
    birth_date = CalendarDate(required=True, **_BIRTH_DATE)
    county = text(100, allow_none=True)


class ChildChangeSchema(InputSchema):
    """The members sent change; the others stay as they are."""

    given_name = text(100)
    family_name = text(100)
    birth_date = CalendarDate(**_BIRTH_DATE)
    county = text(100, allow_none=True, metadata={"description": "`null` erases it."})


class CaregiverInputSchema(InputSchema):
    given_name = text(100, required=True)
    family_name = text(100, required=True)
    relationship = fields.String(required=True, validate=validate.OneOf(RELATIONSHIPS))
    relationship_description = text(200, allow_none=True, **_DESCRIPTION)
    has_legal_authority = StrictBoolean(load_default=False, metadata={"description": _AUTHORITY})
    phone = fields.String(allow_none=True, validate=E164)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))


class CaregiverChangeSchema(InputSchema):
    """An item of a PATCH's `caregivers`. With an `id`: that caregiver, whose members sent
    change and the others stay (`null` erases a phone, an email, a description). Without: a
    new caregiver, as on create (`given_name`, `family_name`, `relationship` required;
    `has_legal_authority` false unless given)."""

    id = fields.UUID(metadata={"description": "The caregiver to keep and change; none for "
                                              "a new one."})
    given_name = text(100)
    family_name = text(100)
    relationship = fields.String(validate=validate.OneOf(RELATIONSHIPS))
    relationship_description = text(200, allow_none=True, **_DESCRIPTION)
    has_legal_authority = StrictBoolean(metadata={"description": _AUTHORITY})
    phone = fields.String(allow_none=True, validate=E164)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))

    @validates_schema
    def _a_new_caregiver_is_whole(self, data, **kwargs):
        if "id" not in data:
            missing = {name: ["Missing data for required field (a new caregiver)."]
                       for name in ("given_name", "family_name", "relationship")
                       if name not in data}
            if missing:
                raise ValidationError(missing)


class ContactPreferencesInputSchema(InputSchema):
    do_not_contact = StrictBoolean(load_default=False)
    methods = fields.List(fields.String(validate=validate.OneOf(CONTACT_METHODS)),
                          load_default=list, validate=unique_items)
    best_times = text(500, allow_none=True)


class ContactPreferencesChangeSchema(InputSchema):
    """The members sent change; the others stay as they are."""

    do_not_contact = StrictBoolean()
    methods = fields.List(fields.String(validate=validate.OneOf(CONTACT_METHODS)),
                          validate=unique_items)
    best_times = text(500, allow_none=True, metadata={"description": "`null` erases it."})


class FamilyCreateSchema(InputSchema):
    """A new family record; the service assigns the caregivers' ids."""

    child = fields.Nested(ChildInputSchema, required=True)
    caregivers = fields.List(fields.Nested(CaregiverInputSchema), required=True,
                             validate=validate.Length(1, 10))
    preferred_language = LanguageTag(allow_none=True)
    interpreter_needed = StrictBoolean(load_default=False)
    cultural_considerations = text(2000, multiline=True, allow_none=True, **_CULTURAL)
    contact_preferences = fields.Nested(ContactPreferencesInputSchema, metadata={
        "description": _CONTACT_PREFERENCES})


class FamilyUpdateSchema(InputSchema):
    """Every field optional; what is left out stays as it is, down into nested objects, whose
    members sent change the stored ones. `caregivers`, when given, is the whole list: items
    with an `id` change that caregiver, items without one are added, caregivers left out are
    removed."""

    child = fields.Nested(ChildChangeSchema)
    caregivers = fields.List(fields.Nested(CaregiverChangeSchema),
                             validate=validate.Length(1, 10))
    preferred_language = LanguageTag(allow_none=True)
    interpreter_needed = StrictBoolean()
    cultural_considerations = text(2000, multiline=True, allow_none=True, **_CULTURAL)
    contact_preferences = fields.Nested(ContactPreferencesChangeSchema, metadata={
        "description": _CONTACT_PREFERENCES + " Checked on the record as changed."})

    @validates_schema
    def _caregiver_ids_once(self, data, **kwargs):
        ids = [c["id"] for c in data.get("caregivers", []) if "id" in c]
        if len(ids) != len(set(ids)):
            raise ValidationError("A caregiver id appears twice", "caregivers")


class FamilyListQuery(PageQuery, InputSchema):
    updated_since = Instant(metadata={
        "description": "Only families created or changed at or after this instant."})


class FamilyReadQuery(InputSchema):
    purpose = fields.String(load_default="care_coordination",
                            validate=validate.OneOf(list(PURPOSES)),
                            metadata={"description": "Why the caller reads the record."})
