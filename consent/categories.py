"""Information categories and purposes: every piece of family information has one category.

This module is the one declaration; the decision engine and every redaction read it.
"""

CATEGORIES = {
    "identity": "Child's and caregivers' names, birth date, county.",
    "contact": "Phones, emails, preferred language, interpreter need, contact preferences, "
               "cultural considerations.",
    "referral_reason": "A referral's reasons and their detail, and when the concern was "
                       "identified (Part C).",
    "screening": "Developmental and social-emotional screening results.",
    "health": "Prematurity, NICU stay, medical conditions.",
    "child_welfare": "Child protective services involvement, foster care, court.",
    "service_status": "A referral's business status, reasons, outcome.",
    "coordination_notes": "Notes exchanged about a referral.",
}

PURPOSES = {
    "referral": "Sending a referral, and either party's reads of its family information.",
    "care_coordination": "Feedback to the referrer and notes, in both directions.",
    "treatment": "The receiving provider's care of the family.",
}

#: The category of each field of a family record; `caregivers` maps each caregiver's fields.
#: Fields not named here (ids, the custodian) are not family information and are always shown.
FAMILY_FIELDS = {
    "child": "identity",
    "caregivers": {
        "given_name": "identity",
        "family_name": "identity",
        "relationship": "identity",
        "relationship_description": "identity",
        "has_legal_authority": "identity",
        "phone": "contact",
        "email": "contact",
    },
    "preferred_language": "contact",
    "interpreter_needed": "contact",
    "cultural_considerations": "contact",
    "contact_preferences": "contact",
}


#: A referral's own fields that tell something about the family: the sender's reasons, and
#: the feedback either side writes. What else a referral shares is its family's record.
REFERRAL_FIELDS = {
    "reasons": "referral_reason",
    "reason_detail": "referral_reason",
    "part_c": {"identified_on": "referral_reason", "referral_due_by": "referral_reason"},
    "business_status": "service_status",
    "status_reason": "service_status",
    "outcome": "service_status",
}

#: Fields of a consent record that tell something about the family beyond the consent itself:
#: who holds legal authority over the child, and how (a court's appointment tells of a court),
#: as the family record's `has_legal_authority` does (only a caregiver with legal authority
#: grants: the grantor's id names one, beside the phone a `contact` look shows with that id);
#: the language it was explained in.
CONSENT_FIELDS = {
    "grantor": {"caregiver_id": "identity", "legal_authority": "identity"},
    "explained_in_language": "contact",
    "interpreter_used": "contact",
}


def categories_in(fields: dict) -> set[str]:
    """Every category a field map declares."""
    found = set()
    for category in fields.values():
        found |= categories_in(category) if isinstance(category, dict) else {category}
    return found


FAMILY_CATEGORIES = frozenset(categories_in(FAMILY_FIELDS))
CONSENT_CATEGORIES = frozenset(categories_in(CONSENT_FIELDS))
#: What a referral can show of the categories it shares: a category it shares but holds
#: nothing of (`health`, say) is agreed at the send, and never shown nor accounted as seen.
REFERRAL_SHOWN_CATEGORIES = FAMILY_CATEGORIES | categories_in(REFERRAL_FIELDS)


def redact(document: dict, fields: dict, permitted) -> dict:
    """`document` without the fields whose category is not permitted."""
    kept = {}
    for name, value in document.items():
        category = fields.get(name)
        if category is None:
            kept[name] = value
        elif isinstance(category, dict) and isinstance(value, dict):
            kept[name] = redact(value, category, permitted)
        elif isinstance(category, dict):
            kept[name] = [redact(item, category, permitted) for item in value]
        elif category in permitted:
            kept[name] = value
    return kept
