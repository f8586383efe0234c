"""The consented family, seeded through the API as partner agencies would create it.

A custodian records a family and 20 consents for it: the one that lets the provider read its
identity and contact for referral and care coordination, and 19 narrower ones (other
purposes, other organizations, expired, revoked), so the engine decides over a family with a
history rather than a lone consent.
"""

import json
from datetime import UTC, datetime, timedelta

from common import api, log

FAMILY = {
    "child": {
        "given_name": "Bench",
        "family_name": "Family",
        "birth_date": "2025-06-01",
        "county": "Washtenaw",
    },
    "caregivers": [
        {
            "given_name": "Maria",
            "family_name": "Family",
            "relationship": "mother",
            "has_legal_authority": True,
            "phone": "+17345550101",
        },
        {
            "given_name": "Ana",
            "family_name": "Family",
            "relationship": "grandparent",
            "has_legal_authority": False,
            "phone": "+17345550102",
        },
    ],
    "preferred_language": "es",
    "interpreter_needed": True,
    "cultural_considerations": "Grandmother joins every visit.",
    "contact_preferences": {"do_not_contact": False, "methods": ["phone", "text"]},
}
CONSENTS = 20


def _at(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _consents(custodian: str, provider: str, others: list[str]) -> list[dict]:
    """The 20 consents: (organizations, purposes, categories, signed days ago, lasting days)."""
    main = ([custodian, provider], ["referral", "care_coordination"], ["identity", "contact"])
    plan = [(*main, 0, 180)]
    # Treatment-only consents with a third party: named, but not for the purpose read.
    plan += [
        ([custodian, provider, others[i]], ["treatment"], ["screening", "health"], 0, 180)
        for i in range(6)
    ]
    # Earlier referral consents, since ended (revoked once recorded: the service records no
    # consent already past its end, and the engine passes over both alike).
    plan += [
        ([custodian, provider], ["referral"], ["identity", "contact", "referral_reason"], 300, 310)
        for _ in range(5)
    ]
    # Consents with other organizations, not naming the provider.
    plan += [
        (
            [custodian, others[6 + i], others[7 + i]],
            ["referral", "care_coordination"],
            ["identity", "contact", "screening"],
            0,
            180,
        )
        for i in range(8)
    ]
    assert len(plan) == CONSENTS
    now = datetime.now(UTC)
    documents = []
    for organizations, purposes, categories, days_ago, lasting in plan:
        # One minute back: signed_at may not lie in the future, even by a clock tick.
        signed = now - timedelta(days=days_ago, minutes=1)
        documents.append(
            {
                "organization_ids": organizations,
                "purposes": purposes,
                "categories": categories,
                "effective_at": _at(signed),
                "expires_at": _at(signed + timedelta(days=lasting)),
                "method": "electronic_signature",
                "signed_at": _at(signed),
                "explained_in_language": "en",
                "interpreter_used": False,
                "revocation_rights_explained": True,
            }
        )
    return documents


def seed_consented_family(
    port: int, *, custodian_token: str, custodian_org: str, provider_org: str, others: list[str]
) -> dict:
    """Create the family and its consents; revoke one treatment consent. Returns the ids."""
    family = api(port, "POST", "/api/v1/families", custodian_token, FAMILY, expect=201)
    mother = next(c for c in family["caregivers"] if c["relationship"] == "mother")
    grantor = {"caregiver_id": mother["id"], "legal_authority": "parent"}
    path = f"/api/v1/families/{family['id']}/consents"
    consent_ids = [
        api(port, "POST", path, custodian_token, {"grantor": grantor, **doc}, expect=201)["id"]
        for doc in _consents(custodian_org, provider_org, others)
    ]
    revocation = {"reason": "Family asked to stop treatment sharing", "requested_by": "caregiver"}
    for ended in (consent_ids[1], *consent_ids[7:12]):
        api(port, "POST", f"/api/v1/consents/{ended}/revoke", custodian_token, revocation)
    log(f"seeded family {family['id']} with {len(consent_ids)} consents through the API")
    return {"family_id": family["id"], "consent_ids": consent_ids}


#: Families the referral scenarios spread their load over, as a network's traffic spreads
#: over many families and referrals (a single row would only measure its lock queue).
REFERRAL_FAMILIES = 50

#: A referral of one of those families: the categories each family's consent covers.
REFERRAL = {"reasons": ["feeding_concerns", "caregiver_depression"],
            "reason_detail": "Mother reports low mood since the birth.",
            "urgency": "routine", "shared_categories": ["identity", "contact"]}
#: The same referral as a body template for wrk (${family_id}, ${provider_org_id}).
REFERRAL_TEMPLATE = json.dumps({"family_id": "${family_id}",
                                "to_organization_id": "${provider_org_id}", **REFERRAL})


def seed_referrals(port: int, *, custodian_token: str, custodian_org: str, provider_org: str,
                   provider_token: str) -> dict:
    """REFERRAL_FAMILIES families, each with a consent for the provider, a referral the
    provider reads and one it has in progress. Returns the scenarios' rotation lists."""
    now = datetime.now(UTC)
    families, reads, working = [], [], []
    for n in range(REFERRAL_FAMILIES):
        family = api(port, "POST", "/api/v1/families", custodian_token,
                     {**FAMILY, "child": {**FAMILY["child"], "given_name": f"Referred{n}"}},
                     expect=201)
        mother = family["caregivers"][0]
        signed = now - timedelta(minutes=1)
        api(port, "POST", f"/api/v1/families/{family['id']}/consents", custodian_token, {
            "grantor": {"caregiver_id": mother["id"], "legal_authority": "parent"},
            "organization_ids": [custodian_org, provider_org],
            "purposes": ["referral", "care_coordination"], "categories": ["identity", "contact"],
            "effective_at": _at(signed), "expires_at": _at(signed + timedelta(days=180)),
            "method": "electronic_signature", "signed_at": _at(signed),
            "explained_in_language": "en", "interpreter_used": False,
            "revocation_rights_explained": True}, expect=201)
        body = {"family_id": family["id"], "to_organization_id": provider_org, **REFERRAL}
        read = api(port, "POST", "/api/v1/referrals", custodian_token, body, expect=201)
        busy = api(port, "POST", "/api/v1/referrals", custodian_token, body, expect=201)
        for step in ({"status": "accepted"},
                     {"status": "in_progress", "business_status": "scheduled"}):
            api(port, "POST", f"/api/v1/referrals/{busy['id']}/transitions", provider_token,
                step, headers={"If-Match": "*"})
        families.append({"family_id": family["id"], "caregiver_id": mother["id"]})
        reads.append({"referral_id": read["id"]})
        working.append({"working_referral_id": busy["id"]})
    log(f"seeded {REFERRAL_FAMILIES} consented families, each with a referral and one in "
        "progress")
    return {"referral_families": families, "read_referrals": reads,
            "working_referrals": working}
