"""The whole permission matrix: every route of the app, every actor situation, one table.

Each row of ROUTES names a route as `app.url_map` spells it, the scopes `require_scope`
declares for it (None: public), how to build a valid request for it in the world of
`tests/matrix_support.py`, and the answer expected in each situation:

- the token situations (no token, malformed, expired, revoked, a revoked client's, in the
  query string, without the route's scope) are the same for every protected route: 401
  `unauthorized`, or 403 `insufficient-scope`; a row may override one (`/me` needs no scope);
- `stranger`: an organization linked to nothing; 404 on another organization's objects, its
  own view on collections;
- `custodian` and `provider`: the clinic that holds the family, records the consent and sends
  the referral, and the provider the consent names and the referral goes to; one answer, or
  four, one per consent state (active, expired, revoked, partial; see matrix_support);
- `draft`: (sender, receiver) of a referral kept as a draft;
- `shows`: for some answers, what of the body the situation sees (`redacted`, whether a
  note's body is there, how many items a list holds, what consent is missing).

A valid token carries the first of the route's scopes and nothing else, so each row also
proves that the route needs no scope it does not declare.

`subject` names the world's ids that identify another organization's object in a request.
Every 404, and every refusal of the token, is asked again with fresh ids in their place, and
both answers must be the same problem (status, type, title, detail, other members, headers,
all but `instance` and `request_id`): not found is not forbidden.

A route the table does not cover fails `test_every_route_is_in_the_table`.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa

from auth.scopes import SCOPES
from tests.conftest import PROBLEM_KEYS, assert_problem, basic
from tests.matrix_support import (
    AUDITOR,
    CONSENT_REQUIRED,
    FORBIDDEN,
    NF,
    NO_CLIENT_AUTH,
    PUBLIC,
    STATES,
    STRANGER,
    TOKEN_SITUATIONS,
    Expected,
    Refused,
    Req,
    Situation,
    World,
    party,
    send,
)

#: The only endpoints left out: static files (the app's and the documentation page's), which
#: are not routes of the API. Every other rule of the url_map has a row.
NOT_API = frozenset({"static", "flasgger.static"})
#: Routes that touch a family's information: each covers every consent state for both parties.
FAMILY_INFORMATION = ("/api/v1/families/<", "/api/v1/consent", "/api/v1/referrals")


@dataclass(frozen=True)
class Shows:
    """What of a body to look at, and what each situation (by name) must see there."""

    part: Callable[[dict], object]
    values: dict


def seen(actor: str, *values, draft=None) -> dict:
    """Situation names of one party mapped to what it sees, one value per consent state
    (None: not a successful answer there), and `draft`: what it sees of a draft."""
    named = {party(actor, state).name: value for state, value in zip(STATES, values,
                                                                      strict=True)}
    if draft is not None:
        named[party(actor, "draft").name] = draft
    return {name: value for name, value in named.items() if value is not None}


@dataclass(frozen=True)
class Route:
    """One row of the matrix."""

    method: str
    rule: str
    #: The scopes of `require_scope` (any one of them suffices); () any token; None public.
    scopes: tuple[str, ...] | None
    build: Callable[[World, object], Req]
    stranger: Expected | None = None
    #: One expectation (consent active), or one per consent state (STATES order).
    custodian: Expected | tuple | None = None
    provider: Expected | tuple | None = None
    #: (sender, receiver) of a referral kept as a draft.
    draft: tuple | None = None
    #: A stranger organization whose token has `audit:read` only.
    auditor: Expected | None = None
    #: Public routes: situation name ("public", "no client credentials") -> expectation.
    public: dict = field(default_factory=dict)
    #: Token situations answered otherwise than 401 / 403 insufficient-scope.
    token_overrides: dict = field(default_factory=dict)
    shows: Shows | None = None
    subject: tuple[str, ...] = ()
    needs: frozenset = frozenset()
    #: Situation name -> why the service fails that case today (a strict xfail).
    xfail: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule.removeprefix('/api/v1')}"

    def cases(self):
        """(situation, expectation) for every situation this row covers."""
        if self.scopes is None:
            named = {"public": PUBLIC, "no client credentials": NO_CLIENT_AUTH}
            yield from ((named[name], expected) for name, expected in self.public.items())
            return
        for name, (situation, expected) in TOKEN_SITUATIONS.items():
            yield situation, self.token_overrides.get(name, expected)
        if self.stranger is not None:
            yield STRANGER, self.stranger
        if self.auditor is not None:
            yield AUDITOR, self.auditor
        for actor, expected in (("clinic", self.custodian), ("provider", self.provider)):
            if isinstance(expected, tuple):
                yield from ((party(actor, s), e) for s, e in zip(STATES, expected, strict=True))
            elif expected is not None:
                yield party(actor, "active"), expected
        if self.draft is not None:
            for actor, expected in zip(("clinic", "provider"), self.draft, strict=True):
                yield party(actor, "draft"), expected


ALL4 = 200, 200, 200, 200
CREATED4 = 201, 201, 201, 201
NF4 = NF, NF, NF, NF
REFERRAL = frozenset({"referral"})
CHECKPOINT = frozenset({"checkpoint"})
CONTACT = ["contact"]
#: A consent record's family facts, both withheld (the grantor's authority, the language).
CONSENT_FACTS = ["contact", "identity"]
NOTHING_SHARED = ["contact", "identity", "referral_reason"]


def _family_body(w, actor):
    return {"child": {"given_name": "Kofi", "family_name": "Mensah", "birth_date": "2025-11-02",
                      "county": "Washtenaw"},
            "caregivers": [{"given_name": "Abena", "family_name": "Mensah",
                            "relationship": "mother", "has_legal_authority": True}]}


def _consent_body(w, actor):
    return {"grantor": {"caregiver_id": str(w.grantor_id), "legal_authority": "parent"},
            "organization_ids": [str(w.clinic_id), str(w.provider_id)],
            "purposes": ["referral"], "categories": ["identity"],
            "expires_at": (w.now + timedelta(days=30)).isoformat(), "method": "written",
            "signed_at": w.now.isoformat(), "explained_in_language": "en",
            "interpreter_used": False, "revocation_rights_explained": True}


def _referral_body(w, actor):
    # The clinic refers the family to the provider; the provider would pass it on to the
    # stranger, whom no consent names; the stranger sends a family it does not know of.
    to = w.stranger_id if actor is w.provider else w.provider_id
    return {"family_id": str(w.family_id), "to_organization_id": str(to),
            "reasons": ["caregiver_depression"], "urgency": "routine",
            "shared_categories": ["identity", "contact", "referral_reason"]}


def _oauth(path, form):
    """A request of the clinic's client, authenticated with HTTP Basic; `None` in `form`
    stands for a live token of that client."""
    def build(w, actor):
        oauth_client, secret = w.make.client(w.clinic, ["directory:read"])
        fields = {name: w.make.token(oauth_client=oauth_client, scopes=["directory:read"])
                  if value is None else value for name, value in form.items()}
        return Req(path, form=fields, headers=basic(oauth_client.client_id, secret))
    return build


def _get(path: str):
    """A GET of `path`, formatted with the world's ids."""
    return lambda w, actor: Req(path.format(w=w))


def _export(w, actor):
    return Req("/api/v1/audit/export", query={
        "since": (w.now - timedelta(days=1)).isoformat(),
        "until": (w.now + timedelta(days=1)).isoformat()})


def _redacted(body):
    return body["redacted"]


def _items(body):
    return len(body["items"])


def _items_redacted(body):
    return [item["redacted"] for item in body["items"]]


def _note_bodies(body):
    """Per note shown (or timeline step showing one): whether its body is shown. A note the
    caller may not read is not shown at all."""
    notes = [item.get("note", item) for item in body["items"]
             if "note" in item or "author_organization_id" in item]
    return ["body" in note for note in notes]


ROUTES = [
    # -- public: health, OAuth, metadata ----------------------------------------------------
    Route("GET", "/healthz", None, _get("/healthz"), public={"public": 200}),
    Route("GET", "/readyz", None, _get("/readyz"), public={"public": 200}),
    Route("GET", "/.well-known/oauth-authorization-server", None,
          _get("/.well-known/oauth-authorization-server"), public={"public": 200}),
    Route("POST", "/oauth/token", None,
          _oauth("/oauth/token", {"grant_type": "client_credentials"}),
          public={"public": 200, "no client credentials": 401}),
    Route("POST", "/oauth/revoke", None, _oauth("/oauth/revoke", {"token": None}),
          public={"public": 200, "no client credentials": 401}),
    Route("POST", "/oauth/introspect", None, _oauth("/oauth/introspect", {"token": None}),
          public={"public": 200, "no client credentials": 401}),
    # -- the contract and its documentation page (flasgger) ---------------------------------
    Route("GET", "/openapi.json", None, _get("/openapi.json"), public={"public": 200}),
    Route("GET", "/apidocs/", None, _get("/apidocs/"), public={"public": 200}),
    Route("GET", "/apidocs/index.html", None, _get("/apidocs/index.html"),
          public={"public": 302}),
    # Swagger UI's page for the OAuth flows that redirect a browser, which this service does
    # not offer; flasgger registers it with the UI, and it holds no data.
    Route("GET", "/oauth2-redirect.html", None, _get("/oauth2-redirect.html"),
          public={"public": 200}),
    # -- who am I, the directory: every organization's to read -------------------------------
    Route("GET", "/api/v1/me", (), _get("/api/v1/me"),
          stranger=200, custodian=200, token_overrides={"token without the scope": 200}),
    Route("GET", "/api/v1/organizations", ("directory:read",), _get("/api/v1/organizations"),
          stranger=200, custodian=200),
    Route("GET", "/api/v1/organizations/<uuid:organization_id>", ("directory:read",),
          _get("/api/v1/organizations/{w.provider_id}"), stranger=200, custodian=200),
    Route("PATCH", "/api/v1/organizations/<uuid:organization_id>", ("directory:write",),
          lambda w, a: Req(f"/api/v1/organizations/{w.clinic_id}",
                           json={"accepting_referrals": True}),
          # Every organization reads the directory, so a listing's existence is no secret:
          # another organization's listing is 403 (issue 2), not 404.
          stranger=FORBIDDEN, custodian=200, subject=("clinic_id",)),
    # -- families -----------------------------------------------------------------------------
    Route("POST", "/api/v1/families", ("families:write",),
          lambda w, a: Req("/api/v1/families", json=_family_body(w, a)),
          stranger=201, custodian=201),
    Route("GET", "/api/v1/families", ("families:read",), _get("/api/v1/families"),
          stranger=200, custodian=200, provider=200,
          shows=Shows(_items, {"stranger": 0, **seen("clinic", 1, None, None, None),
                               **seen("provider", 0, None, None, None)})),
    Route("GET", "/api/v1/families/<uuid:family_id>", ("families:read",),
          _get("/api/v1/families/{w.family_id}"),
          stranger=NF, custodian=ALL4, provider=(200, NF, NF, 200),
          shows=Shows(_redacted, {**seen("clinic", [], [], [], []),
                                  **seen("provider", [], None, None, CONTACT)}),
          subject=("family_id",)),
    Route("PATCH", "/api/v1/families/<uuid:family_id>", ("families:write",),
          lambda w, a: Req(f"/api/v1/families/{w.family_id}",
                           json={"interpreter_needed": False}),
          stranger=NF, custodian=ALL4, provider=(FORBIDDEN, NF, NF, FORBIDDEN),
          subject=("family_id",)),
    Route("GET", "/api/v1/families/<uuid:family_id>/disclosures",
          ("families:read", "audit:read"), _get("/api/v1/families/{w.family_id}/disclosures"),
          stranger=NF, auditor=200, custodian=ALL4, provider=NF4, subject=("family_id",)),
    # -- consent ------------------------------------------------------------------------------
    Route("POST", "/api/v1/families/<uuid:family_id>/consents", ("consent:write",),
          lambda w, a: Req(f"/api/v1/families/{w.family_id}/consents",
                           json=_consent_body(w, a)),
          stranger=NF, custodian=CREATED4, provider=(201, NF, NF, 201),
          subject=("family_id",)),
    Route("GET", "/api/v1/families/<uuid:family_id>/consents", ("consent:read",),
          _get("/api/v1/families/{w.family_id}/consents"),
          stranger=NF, custodian=ALL4, provider=ALL4,
          shows=Shows(_items_redacted, seen("provider", [[]], [CONSENT_FACTS], [CONSENT_FACTS],
                                            [CONTACT, CONTACT])),
          subject=("family_id",)),
    Route("GET", "/api/v1/consents/<uuid:consent_id>", ("consent:read",),
          _get("/api/v1/consents/{w.consent_id}"),
          stranger=NF, custodian=ALL4, provider=ALL4,
          shows=Shows(_redacted, {**seen("clinic", [], [], [], []),
                                  **seen("provider", [], CONSENT_FACTS, CONSENT_FACTS,
                                         CONTACT)}),
          subject=("consent_id",)),
    Route("POST", "/api/v1/consents/<uuid:consent_id>/revoke", ("consent:write",),
          lambda w, a: Req(f"/api/v1/consents/{w.consent_id}/revoke",
                           json={"reason": "The mother asked to stop."}),
          stranger=NF, custodian=ALL4, provider=ALL4, subject=("consent_id",)),
    Route("POST", "/api/v1/consent-decisions", ("consent:read",),
          lambda w, a: Req("/api/v1/consent-decisions", json={
              "family_id": str(w.family_id), "purpose": "referral",
              "categories": ["identity", "contact"]}),
          stranger=NF, custodian=ALL4, provider=ALL4,
          shows=Shows(lambda b: [b["decision"], b["permitted_categories"]], {
              **seen("clinic", *[["permit", ["contact", "identity"]]] * 4),
              **seen("provider", ["permit", ["contact", "identity"]], ["deny", []],
                     ["deny", []], ["deny", ["identity"]])}),
          subject=("family_id",)),
    # -- referrals ----------------------------------------------------------------------------
    Route("POST", "/api/v1/referrals", ("referrals:write",),
          lambda w, a: Req("/api/v1/referrals", json=_referral_body(w, a)),
          stranger=NF, custodian=(201, CONSENT_REQUIRED, CONSENT_REQUIRED, CONSENT_REQUIRED),
          provider=(CONSENT_REQUIRED, NF, NF, CONSENT_REQUIRED),
          shows=Shows(lambda b: b.get("missing_categories"), {
              **seen("clinic", None, NOTHING_SHARED, NOTHING_SHARED,
                     ["contact", "referral_reason"]),
              **seen("provider", NOTHING_SHARED, None, None, NOTHING_SHARED)}),
          subject=("family_id",)),
    Route("GET", "/api/v1/referrals", ("referrals:read",), _get("/api/v1/referrals"),
          stranger=200, custodian=ALL4, provider=ALL4, draft=(200, 200),
          shows=Shows(_items_redacted, {
              "stranger": [], **seen("clinic", [[]], [[]], [[]], [[]], draft=[[]]),
              **seen("provider", [[]], [NOTHING_SHARED], [NOTHING_SHARED],
                     [["contact", "referral_reason"]], draft=[])}),
          needs=REFERRAL),
    Route("GET", "/api/v1/referrals/<uuid:referral_id>", ("referrals:read",),
          _get("/api/v1/referrals/{w.referral_id}"),
          stranger=NF, custodian=ALL4, provider=ALL4, draft=(200, NF),
          shows=Shows(_redacted, seen("provider", [], NOTHING_SHARED, NOTHING_SHARED,
                                      ["contact", "referral_reason"])),
          subject=("referral_id",), needs=REFERRAL),
    Route("POST", "/api/v1/referrals/<uuid:referral_id>/transitions", ("referrals:write",),
          lambda w, a: Req(f"/api/v1/referrals/{w.referral_id}/transitions",
                           json={"status": "cancelled", "reason": "family_moved"},
                           headers={"If-Match": w.referral_etag}),
          stranger=NF, custodian=ALL4, provider=ALL4, draft=(200, NF),
          subject=("referral_id",), needs=REFERRAL),
    Route("GET", "/api/v1/referrals/<uuid:referral_id>/events", ("referrals:read",),
          _get("/api/v1/referrals/{w.referral_id}/events"),
          stranger=NF, custodian=ALL4, provider=ALL4, draft=(200, NF),
          shows=Shows(_note_bodies, {**seen("clinic", [True], [], [], []),
                                     **seen("provider", *[[True]] * 4)}),
          subject=("referral_id",), needs=REFERRAL),
    Route("POST", "/api/v1/referrals/<uuid:referral_id>/notes", ("referrals:write",),
          lambda w, a: Req(f"/api/v1/referrals/{w.referral_id}/notes",
                           json={"body": "Left a voicemail for the mother."}),
          stranger=NF, custodian=CREATED4, provider=CREATED4, draft=(201, NF),
          subject=("referral_id",), needs=REFERRAL),
    Route("GET", "/api/v1/referrals/<uuid:referral_id>/notes", ("referrals:read",),
          _get("/api/v1/referrals/{w.referral_id}/notes"),
          stranger=NF, custodian=ALL4, provider=ALL4, draft=(200, NF),
          shows=Shows(_note_bodies, {**seen("clinic", [True], [], [], []),
                                     **seen("provider", *[[True]] * 4)}),
          subject=("referral_id",), needs=REFERRAL),
    # -- audit: the auditors' trail; no organization's objects -------------------------------
    Route("GET", "/api/v1/audit/events", ("audit:read",), _get("/api/v1/audit/events"),
          stranger=200, custodian=200),
    Route("GET", "/api/v1/audit/events/<bigint:seq>", ("audit:read",),
          _get("/api/v1/audit/events/{w.event_seq}"), stranger=200, custodian=200),
    Route("GET", "/api/v1/audit/verify", ("audit:read",), _get("/api/v1/audit/verify"),
          stranger=200, custodian=200),
    Route("GET", "/api/v1/audit/checkpoints/latest", ("audit:read",),
          _get("/api/v1/audit/checkpoints/latest"), stranger=200, custodian=200,
          needs=CHECKPOINT),
    Route("POST", "/api/v1/audit/checkpoints/verify", ("audit:read",),
          lambda w, a: Req("/api/v1/audit/checkpoints/verify", json=w.checkpoint),
          stranger=200, custodian=200, needs=CHECKPOINT),
    Route("GET", "/api/v1/audit/export", ("audit:read",), _export,
          stranger=200, custodian=200),
]


def _cases():
    for route in ROUTES:
        for situation, expected in route.cases():
            marks = ()
            if situation.name in route.xfail:
                marks = pytest.mark.xfail(strict=True, reason=route.xfail[situation.name])
            yield pytest.param(route, situation, expected, marks=marks,
                               id=f"{route.label} | {situation.name} -> {expected}")


CASES = list(_cases())


# -- the table covers the app, and says what the app says ------------------------------------

def _app_routes(app) -> dict[tuple[str, str], object]:
    """(method, rule) -> view of every API route, HEAD and OPTIONS aside."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_API:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes[(method, rule.rule)] = app.view_functions[rule.endpoint]
    return routes


def test_every_route_is_in_the_table(app):
    """Every rule of the url_map has a row, static files aside (NOT_API, by exact endpoint):
    a new route, the documentation's included, cannot escape the matrix."""
    in_app = set(_app_routes(app))
    in_table = [(route.method, route.rule) for route in ROUTES]
    assert len(set(in_table)) == len(in_table), "a route has two rows"
    missing = sorted(in_app - set(in_table))
    assert not missing, f"routes the permission matrix does not cover: {missing}"
    gone = sorted(set(in_table) - in_app)
    assert not gone, f"rows for routes the app does not have: {gone}"
    stale = NOT_API - {rule.endpoint for rule in app.url_map.iter_rules()}
    assert not stale, f"exclusions of endpoints the app does not have: {sorted(stale)}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.label)
def test_the_row_declares_the_routes_scopes(app, route):
    view = _app_routes(app).get((route.method, route.rule))
    assert view is not None
    declared = getattr(view, "required_scopes", None)
    if route.scopes is None:
        assert declared is None, f"{route.label} is guarded: require_scope{declared}"
    else:
        assert declared is not None, f"{route.label} has no require_scope"
        assert set(declared) == set(route.scopes)
        assert set(route.scopes) <= set(SCOPES)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.label)
def test_the_row_covers_what_its_route_needs(route):
    """Protected rows name the stranger and the custodian; rows with a 404 say which ids to
    swap; routes touching family information cover every consent state for both parties."""
    if route.scopes is None:
        assert route.public
        return
    assert route.stranger is not None and route.custodian is not None
    situations = {situation.name for situation, _ in route.cases()}
    if any(expected == NF for _, expected in route.cases()):
        assert route.subject, "a 404 case needs the ids to compare with missing ones"
    if route.rule.startswith(FAMILY_INFORMATION):
        assert isinstance(route.custodian, tuple) and isinstance(route.provider, tuple)
    if route.shows:
        assert set(route.shows.values) <= situations


# -- the matrix --------------------------------------------------------------------------------

def _assert_answer(response, expected: Expected):
    if isinstance(expected, Refused):
        assert_problem(response, expected.status, expected.slug,
                       extra=("missing_categories",) if expected.slug == "consent-required"
                       else ())
        if expected.status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        if expected.slug == "insufficient-scope":
            assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    else:
        assert response.status_code == expected, response.get_data(as_text=True)


#: Headers that differ between any two requests: the request id, and the rate limiter's
#: counters and clock (its Retry-After counts seconds to the window's end).
VOLATILE_HEADERS = ("X-Request-ID", "Content-Length", "X-RateLimit-Remaining",
                    "X-RateLimit-Reset", "Retry-After")


def _shape(response) -> dict:
    """All of an answer that must not tell an existing object from a missing one."""
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("instance", "request_id")}
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return {"status": response.status_code, "body": body, "headers": headers}


@pytest.mark.parametrize(("route", "situation", "expected"), CASES)
def test_permission_matrix(app, client, make, route, situation, expected):
    world = World(app, client, make, state=situation.state, needs=route.needs)
    actor = world.organization(situation.actor)
    headers, query = world.credentials(situation, route.scopes or ())
    request = route.build(world, actor)
    if situation is NO_CLIENT_AUTH:
        del request.headers["Authorization"]

    response = send(client, route.method, request, headers, query)

    _assert_answer(response, expected)
    if route.shows and situation.name in route.shows.values:
        assert route.shows.part(response.json) == route.shows.values[situation.name]
    if route.subject and (expected == NF or situation.name in TOKEN_SITUATIONS):
        # The same caller asking about ids that exist nowhere learns exactly as much.
        missing = route.build(world.with_missing(route.subject), actor)
        answer = send(client, route.method, missing, headers, query)
        assert answer.json.keys() == PROBLEM_KEYS
        assert _shape(response) == _shape(answer)


def test_every_party_and_state_has_cases():
    """A guard against a table that silently stops generating cases."""
    names = {situation.name for route in ROUTES for situation, _ in route.cases()}
    assert names >= {party(actor, state).name for actor in ("clinic", "provider")
                     for state in (*STATES, "draft")}
    assert names >= set(TOKEN_SITUATIONS) | {STRANGER.name, AUDITOR.name, PUBLIC.name,
                                             NO_CLIENT_AUTH.name}
    protected = [route for route in ROUTES if route.scopes is not None]
    assert len(CASES) >= len(protected) * (len(TOKEN_SITUATIONS) + 2)


def test_a_token_in_the_query_string_lends_no_rights_to_the_header(app, client, make):
    """The custodian's valid token in the query string beside the stranger's own token in the
    header lends nothing: every route refuses the unknown `access_token` parameter (422)
    before it looks anything up, so the answer is the same for any id."""
    world = World(app, client, make)
    headers, _ = world.credentials(STRANGER, ("consent:read",))
    _, query = world.credentials(Situation("custodian's token in the query string",
                                           credentials="query"), ("consent:read",))
    path = f"/api/v1/consents/{world.consent_id}"

    response = client.get(path, headers=headers, query_string=query)

    body = assert_problem(response, 422, "validation-error")
    assert set(body["errors"]) == {"access_token"}
    missing = client.get(f"/api/v1/consents/{uuid.uuid4()}", headers=headers,
                         query_string=query)
    assert _shape(response) == _shape(missing)


# -- the refusals on the trail ---------------------------------------------------------------

#: Rows refusing the stranger with 404: requests about the world's family or what hangs on it.
ABOUT_THE_FAMILY = [route for route in ROUTES if route.stranger == NF]


@pytest.mark.parametrize("route", ABOUT_THE_FAMILY, ids=lambda route: route.label)
def test_a_token_without_the_scope_is_recorded_as_the_strangers_404_is(app, client, make,
                                                                        route):
    """An auditor filtering the trail by family or by action finds a request refused for its
    token's scope, before the service looked anything up, as it finds a stranger's: the
    same action, and the family named."""
    from audit.models import AuditEvent
    from core.db import db

    world = World(app, client, make, needs=route.needs)
    recorded = []
    for situation in (TOKEN_SITUATIONS["token without the scope"][0], STRANGER):
        headers, query = world.credentials(situation, route.scopes)
        request = route.build(world, world.organization(situation.actor))
        assert send(client, route.method, request, headers, query).status_code in (403, 404)
        with app.app_context():
            event = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())
                                       .limit(1)).one()
        recorded.append((event.outcome, event.action, event.family_id))
    scope_refusal, strangers = recorded
    assert scope_refusal == strangers
    assert scope_refusal[2] == world.family_id
