"""The benchmark scenarios, one dict each; bench/run drives them in this order.

Keys:
  name              unique, used by `bench/run --only`
  target            "service" or "floor" (the bare app in bench/floor.py)
  method, path      the request; path may carry a query string
  headers, body     optional; values may use ${token} (a bearer token issued before the run),
                    ${basic} (base64 of client_id:client_secret), ${client_id}, ${org_id}
                    (the first seeded organization), and the consented family seeded through
                    the API (bench/seeding.py): ${family_id}, ${provider_token} (a token of a
                    provider that is not the family's custodian but holds its consent)
  floor_to_compare  for service scenarios: the floor scenario doing the nearest bare work
                    (an insert and commit, or a select by key), the baseline for the ratios
  min_rps_ratio     optional target: the least `x floor req/s` that PASSes
"""

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
        "min_rps_ratio": 0.6,
    },
]
