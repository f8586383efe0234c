"""The benchmark scenarios, one dict each; bench/run drives them in this order.

Keys:
  name              unique, used by `bench/run --only`
  target            "service" or "floor" (the bare app in bench/floor.py)
  method, path      the request; path may carry a query string
  headers, body     optional; values may use ${token} (a bearer token issued before the run),
                    ${basic} (base64 of client_id:client_secret), ${client_id}, ${org_id}
                    (the first seeded organization)
  floor_to_compare  for service scenarios: the floor scenario doing the nearest bare work
                    (an insert and commit, or a select by key), the baseline for the ratios
"""

BEARER = {"Authorization": "Bearer ${token}"}

SCENARIOS = [
    {"name": "floor_insert", "target": "floor", "method": "POST", "path": "/insert"},
    {"name": "floor_select", "target": "floor", "method": "GET", "path": "/select"},
    {
        "name": "token_issue",
        "target": "service",
        "method": "POST",
        "path": "/oauth/token",
        "headers": {
            "Authorization": "Basic ${basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        "body": "grant_type=client_credentials",
        "floor_to_compare": "floor_insert",
    },
    {
        "name": "me",
        "target": "service",
        "method": "GET",
        "path": "/api/v1/me",
        "headers": BEARER,
        "floor_to_compare": "floor_select",
    },
    {
        "name": "directory_list",
        "target": "service",
        "method": "GET",
        "path": "/api/v1/organizations?limit=20",
        "headers": BEARER,
        "floor_to_compare": "floor_select",
    },
]
