"""The one scope registry: every scope the service knows, with what it grants."""

SCOPES: dict[str, str] = {
    "directory:read": "Read the network's directory of organizations.",
    "directory:write": "Update the calling organization's own directory listing.",
    "families:read": "Read families the organization holds, or may see under consent.",
    "families:write": "Create and update the organization's own family records.",
    "consent:read": "Read family consents the organization is a party to.",
    "consent:write": "Record and revoke family consents.",
    "referrals:read": "Read referrals the organization sent or received.",
    "referrals:write": "Send referrals, move them through their lifecycle, write notes.",
    "audit:read": "Query and verify the audit trail of every access.",
}


def unknown_scopes(scopes) -> list[str]:
    """The given scopes that the registry does not know, in order."""
    return [scope for scope in scopes if scope not in SCOPES]
