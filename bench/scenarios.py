"""The benchmark scenarios, one dict each; bench/run drives them in this order.

Keys:
  name              unique, used by `bench/run --only`
  target            "service" or "floor" (the bare app in bench/floor.py)
  method, path      the request; path may carry a query string
  headers, body     optional; values may use ${token} (a bearer token issued before the run),
                    ${basic} (base64 of client_id:client_secret), ${client_id}, ${org_id}
                    (the first seeded organization), and the consented family seeded through
                    the API (bench/seeding.py): ${family_id}, ${provider_token} (a token of a
                    provider that is not the family's custodian but holds its consent),
                    ${custodian_token}, ${provider_org_id}
  rotate            optional: a context list of value sets (bench/seeding.py: referral_families,
                    read_referrals, working_referrals); each request fills the path and body
                    with the next set, spreading the load over many objects
  floor_to_compare  for service scenarios: the floor scenario doing the nearest bare work
                    (an insert and commit, or a select by key), the baseline for the ratios
  statements        optional: (selects, writes), the SQL statements one request sends besides
                    the commit; each round then also measures the floor sending just those
                    (POST /statements/<selects>/<writes>): the most the bare stack allows a
                    request that needs them, as a fraction of floor_to_compare, and the
                    service as a fraction of it
  min_rps_ratio     optional target: the least `x floor req/s` that PASSes
  max_p99_ratio     optional target: the most `x floor p99` that PASSes (with min_rps_ratio)
"""

from seeding import REFERRAL_TEMPLATE

BEARER = {"Authorization": "Bearer ${token}"}
BASIC_FORM = {
    "Authorization": "Basic ${basic}",
    "Content-Type": "application/x-www-form-urlencoded",
}

SCENARIOS = [
    {"name": "floor_insert", "target": "floor", "method": "POST", "path": "/insert"},
    {"name": "floor_select", "target": "floor", "method": "GET", "path": "/select"},
    {
        "name": "token_issue",
        "target": "service",
        "method": "POST",
        "path": "/oauth/token",
        "headers": BASIC_FORM,
        "body": "grant_type=client_credentials",
        "floor_to_compare": "floor_insert",
        "statements": (1, 2),
        "min_rps_ratio": 0.5,
    },
    {
        # Records one audit event per request, hence the insert floor.
        "name": "introspect",
        "target": "service",
        "method": "POST",
        "path": "/oauth/introspect",
        "headers": BASIC_FORM,
        "body": "token=${token}",
        "floor_to_compare": "floor_insert",
        "statements": (2, 1),
        "min_rps_ratio": 0.8,
    },
    {
        "name": "me",
        "target": "service",
        "method": "GET",
        "path": "/api/v1/me",
        "headers": BEARER,
        "floor_to_compare": "floor_select",
        "min_rps_ratio": 0.8,
    },
    {
        "name": "directory_list",
        "target": "service",
        "method": "GET",
        "path": "/api/v1/organizations?limit=20",
        "headers": BEARER,
        "floor_to_compare": "floor_select",
    },
    {
        # A non-custodian's read under consent: token, decision over the family's 20
        # consents, redaction and one audit event.
        "name": "family_read_consented",
        "target": "service",
        "method": "GET",
        "path": "/api/v1/families/${family_id}?purpose=referral",
        "headers": {"Authorization": "Bearer ${provider_token}"},
        "floor_to_compare": "floor_insert",
        # The family shared first, then read (a look waits for a revocation in progress).
        "statements": (4, 1),
        "min_rps_ratio": 0.6,
    },
    {
        # Token, validation, the consent decision, the insert of the referral and its
        # timeline entry, one audit event; over 50 families in turn.
        "name": "referral_send",
        "target": "service",
        "method": "POST",
        "path": "/api/v1/referrals",
        "headers": {"Authorization": "Bearer ${custodian_token}",
                    "Content-Type": "application/json"},
        "body": REFERRAL_TEMPLATE,
        "rotate": "referral_families",
        "floor_to_compare": "floor_insert",
        "statements": (5, 3),
        "min_rps_ratio": 0.5,
        "max_p99_ratio": 3,
    },
    {
        # The receiver's read: the shared categories as the engine permits them now.
        "name": "referral_read_receiver",
        "target": "service",
        "method": "GET",
        "path": "/api/v1/referrals/${referral_id}",
        "headers": {"Authorization": "Bearer ${provider_token}"},
        "rotate": "read_referrals",
        "floor_to_compare": "floor_insert",
        # The family shared first, then the referral and its family read.
        "statements": (4, 1),
        "min_rps_ratio": 0.6,
        "max_p99_ratio": 3,
    },
    {
        # A new business status on a referral in progress: the row locked, If-Match checked
        # (`*`: wrk cannot carry each referral's ETag), a timeline entry, one event.
        "name": "referral_transition",
        "target": "service",
        "method": "POST",
        "path": "/api/v1/referrals/${working_referral_id}/transitions",
        "headers": {"Authorization": "Bearer ${provider_token}",
                    "Content-Type": "application/json", "If-Match": "*"},
        "body": '{"status": "in_progress", "business_status": "engaged"}',
        "rotate": "working_referrals",
        "floor_to_compare": "floor_insert",
        "statements": (4, 3),
        "min_rps_ratio": 0.5,
        "max_p99_ratio": 3,
    },
    {
        # A network's mixed traffic (sustained.py: token issue, directory reads, family and
        # consent writes, referral sends, transitions and reads, auditors' queries) at about
        # 70% of the mix's measured maximum, for --sustained-seconds (300). PASS: no 5xx, p99
        # within 3x the floor's, each worker's memory flat, the chain verifying, and every
        # audited request's events on the trail.
        "name": "sustained",
        "target": "service",
        "mix": True,
        "method": "MIX",
        "path": "(mixed)",
        "load_fraction": 0.7,
        "floor_to_compare": "floor_insert",
        "max_p99_ratio": 3,
    },
]
