"""Rate limits per client, security headers on every response."""

import base64
import time
import uuid

import flask_migrate
import pytest
import redis

from app import create_app
from core.config import ConfigError
from core.db import db
from core.web import SECURITY_HEADERS
from tests.conftest import TEST_SECRET_KEY, assert_problem, audit_events, basic, bearer


def test_a_client_over_its_api_budget_gets_429_with_retry_after(app, client, make,
                                                               monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_API", "3 per minute")
    token = make.token()
    other = make.token()
    answers = [client.get("/api/v1/me", headers=bearer(token)) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    body = assert_problem(answers[3], 429, "rate-limited")
    assert 0 < int(answers[3].headers["Retry-After"]) <= 60
    assert "3 per 1 minute" in body["detail"]
    # One budget per client across every route; another client is not held back.
    assert_problem(client.get("/api/v1/organizations", headers=bearer(token)), 429,
                   "rate-limited")
    assert client.get("/api/v1/me", headers=bearer(other)).status_code == 200


#: A stranger guessing secrets, and the client at its own address.
STRANGER, OWN = {"REMOTE_ADDR": "203.0.113.66"}, {"REMOTE_ADDR": "198.51.100.7"}
FORM = {"grant_type": "client_credentials"}


def test_the_token_endpoint_counts_a_client_once_it_authenticates_and_wrong_secrets_per_address(
        app, client, make, monkeypatch):
    """Client ids are not secret: wrong secrets count against the id claimed at the address
    they come from, so a stranger is slowed without locking the client out of its tokens; the
    client's own requests count against its own budget."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "2 per minute")
    oauth_client, secret = make.client()

    def token(secret_sent, address):
        return client.post("/oauth/token", data=FORM, environ_base=address,
                           headers=basic(oauth_client.client_id, secret_sent))

    assert [token("guess", STRANGER).status_code for _ in range(2)] == [401, 401]
    # Refused before the secret is checked: the right one from that address waits too.
    assert_problem(token(secret, STRANGER), 429, "rate-limited")
    assert [token(secret, OWN).status_code for _ in range(2)] == [200, 200]
    limited = token(secret, OWN)
    assert_problem(limited, 429, "rate-limited")
    assert "Retry-After" in limited.headers
    other, other_secret = make.client()
    assert client.post("/oauth/token", data=FORM,
                       headers=basic(other.id, other_secret)).status_code == 200


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_strangers_wrong_secrets_leave_the_client_its_oauth_endpoints(
        app, client, make, monkeypatch, path):
    """Spending a known client id's budget with wrong secrets once kept its system from getting
    tokens, and from revoking one it believed leaked (RFC 6819 4.4.1.11, 5.1.4.2.3: throttle
    the guesses, not the client)."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "3 per minute")
    victim, secret = make.client()
    token = make.token(oauth_client=victim)
    form = FORM if path == "/oauth/token" else {"token": token}
    for _ in range(4):
        client.post(path, data=form, headers=basic(victim.client_id, "guess"),
                    environ_base=STRANGER)

    response = client.post(path, data=form, headers=basic(victim.client_id, secret),
                           environ_base=OWN)

    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/v1/me", "/healthz", "/openapi.json", "/nowhere",
                                  "/apidocs/"])
def test_every_response_carries_the_security_headers(client, make, path):
    response = client.get(path, headers=bearer(make.token()))
    for name, value in SECURITY_HEADERS.items():
        assert len(response.headers.getlist(name)) == 1, name
        if name == "Content-Security-Policy" and path.startswith("/apidocs"):
            assert response.headers[name].startswith("default-src 'self'")
            assert "frame-ancestors 'none'" in response.headers[name]
        else:
            assert response.headers[name] == value, name
    assert "Set-Cookie" not in response.headers


def test_an_answer_that_sets_its_own_caching_keeps_it(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "OAUTH_ISSUER", "https://imh.example.org")
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.json["token_endpoint"] == "https://imh.example.org/oauth/token"
    assert response.headers.getlist("Cache-Control") == ["public, max-age=3600"]


def test_metadata_named_after_the_callers_host_is_kept_by_no_cache(app, client):
    """Without OAUTH_ISSUER the metadata names the Host a caller sent: marked public for an
    hour, a shared cache could serve a stranger's token endpoint to every partner, who would
    send it their secrets (a review)."""
    assert not app.config["OAUTH_ISSUER"]
    response = client.get("/.well-known/oauth-authorization-server",
                          headers={"Host": "attacker.example"})
    assert response.json["token_endpoint"] == "http://attacker.example/oauth/token"
    assert response.headers.getlist("Cache-Control") == ["no-store"]


def test_every_counted_answer_says_the_budget_and_a_refusal_when_it_renews(
        app, client, make, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_API", "2 per minute")
    token = make.token()
    first, second, third = (client.get("/api/v1/me", headers=bearer(token)) for _ in range(3))
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == \
        ("2", "1")
    assert second.headers["X-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in second.headers and "X-RateLimit-Reset" not in second.headers
    assert_problem(third, 429, "rate-limited")
    assert (third.headers["X-RateLimit-Limit"], third.headers["X-RateLimit-Remaining"]) == \
        ("2", "0")
    assert 0 < int(third.headers["X-RateLimit-Reset"]) - time.time() <= 61
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert client.get("/healthz").headers.get("X-RateLimit-Limit") is None  # not counted


def test_no_token_is_not_counted_a_refused_scope_is(app, client, make, monkeypatch):
    """A stranger's 401 counts against nobody; a known client's refusals count against it, as
    they are recorded in the trail."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_API", "2 per minute")
    unknown = client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and "X-RateLimit-Limit" not in unknown.headers
    token = make.token(scopes=("directory:read",))
    refused = client.get("/api/v1/families", headers=bearer(token))
    assert_problem(refused, 403, "insufficient-scope")
    assert refused.headers["X-RateLimit-Remaining"] == "1"
    unknown_query = client.get("/api/v1/me?x=1", headers=bearer(token))
    assert unknown_query.status_code == 422
    assert unknown_query.headers["X-RateLimit-Remaining"] == "0"
    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 429, "rate-limited")


def test_the_token_endpoint_says_the_claimed_clients_budget(app, client, make, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "1 per minute")
    oauth_client, _ = make.client()
    form = {"grant_type": "client_credentials"}
    wrong = client.post("/oauth/token", data=form, headers=basic(oauth_client.id, "guess"))
    assert wrong.status_code == 401
    assert (wrong.headers["X-RateLimit-Limit"], wrong.headers["X-RateLimit-Remaining"]) == \
        ("1", "0")
    limited = client.post("/oauth/token", data=form, headers=basic(oauth_client.id, "guess"))
    assert_problem(limited, 429, "rate-limited")
    assert 0 < int(limited.headers["X-RateLimit-Reset"]) - time.time() <= 61


def _written_otherwise(client_id: str, secret: str) -> dict[str, str]:
    """Authorization headers naming the client's id other than as issued: other spellings of
    the UUID (no client at all), the id percent-encoded as RFC 6749 2.3.1 allows (the client
    itself), the scheme followed by a tab, which the server reads as Basic, and the id with an
    empty secret or none at all."""
    encoded = "".join(f"%{ord(character):02X}" for character in client_id)
    spelled = {"upper case": client_id.upper(), "no hyphens": client_id.replace("-", ""),
               "braces": "{" + client_id + "}", "urn": "urn%3Auuid%3A" + client_id,
               "percent-encoded": encoded}
    headers = {name: basic(spelling, secret)["Authorization"]
               for name, spelling in spelled.items()}
    headers["Basic<TAB>"] = basic(client_id, secret)["Authorization"].replace(" ", "\t ")
    headers["empty secret"] = basic(client_id, "")["Authorization"]
    headers["no colon"] = "Basic " + base64.b64encode(client_id.encode()).decode()
    return headers


#: The ways of writing _written_otherwise that authenticate the client itself.
AUTHENTICATING = ("percent-encoded", "Basic<TAB>")


def test_the_token_budgets_are_the_clients_however_its_id_is_written(app, client, make,
                                                                     monkeypatch):
    """Writing the id or the Basic header another way opens no fresh budget: neither the
    client's own, nor the failures of its id at an address."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "2 per minute")
    oauth_client, secret = make.client()
    for _ in range(2):
        assert client.post("/oauth/token", data=FORM, environ_base=OWN,
                           headers=basic(oauth_client.client_id, secret)).status_code == 200
        assert client.post("/oauth/token", data=FORM, environ_base=STRANGER,
                           headers=basic(oauth_client.client_id, "guess")).status_code == 401
    written = _written_otherwise(oauth_client.client_id, secret)

    authenticated = {name: client.post("/oauth/token", data=FORM, environ_base=OWN,
                                       headers={"Authorization": written[name]}).status_code
                     for name in AUTHENTICATING}
    failed = {name: client.post("/oauth/token", data=FORM, environ_base=STRANGER,
                                headers={"Authorization": header}).status_code
              for name, header in written.items()}

    assert authenticated == dict.fromkeys(AUTHENTICATING, 429)
    assert failed == dict.fromkeys(written, 429)


def test_wrong_secrets_past_the_token_budget_add_nothing_to_the_trail(app, client, make,
                                                                      monkeypatch):
    """A wrong secret naming a real client is a `deny` in the trail; client ids are not
    secret, so the budget, not the spelling of the id, bounds how many a stranger can write."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "2 per minute")
    oauth_client, _ = make.client()
    form = {"grant_type": "client_credentials"}
    headers = [basic(oauth_client.client_id, "a wrong secret")] * 3 + [
        {"Authorization": header}
        for header in _written_otherwise(oauth_client.client_id, "a wrong secret").values()]

    for header in headers:
        client.post("/oauth/token", data=form, headers=header)

    with app.app_context():
        assert len(audit_events(client_id=oauth_client.client_id, outcome="deny",
                                reason="invalid_client")) == 2


def test_basic_headers_naming_no_client_count_against_the_address(app, client, monkeypatch):
    """A Basic header that cannot be read names no client: the address's budget counts it."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "3 per minute")
    unreadable = ["Basic ", "Basic \xa0", "Basic " + base64.b64encode(b"\xff:\xfe").decode()]
    # An address of its own: the app's counters outlive one test.
    address = {"REMOTE_ADDR": "192.0.2.7"}

    answers = [client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": authorization},
                           environ_base=address).status_code
               for authorization in [*unreadable, "Basic "]]

    assert answers == [401, 401, 401, 429]


def test_unreachable_counters_refuse_with_503_not_500(app, client, make, monkeypatch):
    from limits.errors import StorageError

    storage = app.extensions["rate_limit_storage"]

    def down(*_args, **_kwargs):
        raise StorageError(ConnectionError("redis is down"))

    monkeypatch.setattr(storage, "incr", down)
    answer = client.get("/api/v1/me", headers=bearer(make.token()))
    assert_problem(answer, 503, "service-unavailable")
    assert answer.headers["Retry-After"] == "5"


@pytest.mark.parametrize("budget", ["lots", "1200 per minute; 20000 per day"])
def test_a_budget_that_is_not_one_limit_stops_the_start(tmp_path, budget):
    with pytest.raises(ConfigError, match="RATE_LIMIT_API"):
        create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    "RATE_LIMIT_API": budget})


@pytest.mark.parametrize("budget", ["RATE_LIMIT_API", "RATE_LIMIT_TOKEN"])
def test_a_budget_of_no_requests_stops_the_start(tmp_path, budget):
    """`0 per minute` would answer every counted call 429: a closed service, not a budget."""
    with pytest.raises(ConfigError, match=f"{budget}: a limit of at least one request"):
        create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    budget: "0 per minute"})


def test_a_redis_url_the_limits_library_refuses_stops_the_start(tmp_path):
    """A Redis URL whose options the `limits` library cannot read is a configuration error,
    and the URL (it may hold a password) is not repeated."""
    with pytest.raises(ConfigError, match="REDIS_URL") as refused:
        create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    "REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0?socket_timeout=soon"})
    assert "hunter2" not in str(refused.value)


def test_with_redis_url_the_counters_live_in_redis(app, tmp_path):
    """Every worker and host counts one budget: the counters are in Redis, not a process."""
    claimed = f"nobody-{uuid.uuid4()}"
    limited_app = create_app({
        "TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "LOG_LEVEL": "WARNING",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'limits.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/0", "RATE_LIMIT_TOKEN": "2 per minute",
        "AUDIT_CHECKPOINT_INTERVAL": 0})
    store = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        with limited_app.app_context():
            flask_migrate.upgrade()
        web = limited_app.test_client()
        form = {"grant_type": "client_credentials"}
        statuses = [web.post("/oauth/token", data=form, headers=basic(claimed, "x")).status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 429]
        assert list(store.scan_iter(f"*{claimed}*"))
    finally:
        for key in store.scan_iter(f"*{claimed}*"):
            store.delete(key)
        with limited_app.app_context():
            db.engine.dispose()


def test_the_process_counters_keep_one_window_per_key_and_renew_it():
    from core.limits import ProcessCounters

    clock = [1000.0]
    counters = ProcessCounters(clock=lambda: clock[0])
    assert [counters.incr("a", 60) for _ in range(3)] == [1, 2, 3]
    assert counters.incr("b", 60) == 1
    assert counters.get_expiry("a") == 1060.0
    clock[0] = 1059.9
    assert counters.incr("a", 60) == 4
    clock[0] = 1060.0  # the window has ended: a new one opens
    assert counters.incr("a", 60) == 1
    assert counters.get_expiry("a") == 1120.0
    assert counters.get_expiry("never-counted") == 1060.0
    # Ended windows are forgotten, so a process meeting many clients does not grow for ever.
    clock[0] = 2000.0
    counters.incr("c", 60)
    assert set(counters._windows) == {"c"}


def test_the_process_counters_count_every_request_of_threads_counting_at_once():
    from concurrent.futures import ThreadPoolExecutor

    from core.limits import ProcessCounters

    counters = ProcessCounters()

    def count_many(_):
        return [counters.incr("shared", 60) for _ in range(2000)]

    with ThreadPoolExecutor(16) as pool:
        seen = [n for counts in pool.map(count_many, range(16)) for n in counts]
    # Each increment saw its own total: none lost, none counted twice, no error.
    assert sorted(seen) == list(range(1, 16 * 2000 + 1))


def test_behind_trusted_proxies_the_callers_address_is_the_forwarded_one(
        app, client, make, monkeypatch):
    """Behind a reverse proxy every request comes from the proxy: its address, not the
    caller's, went into each audit event's `request_ip` and named the per-address token
    budget. With TRUSTED_PROXIES=1 the address the proxy forwards is the caller's; without
    (the default) X-Forwarded-For is anyone's to write and is ignored."""
    from core.web import behind_proxies

    token = make.token(make.organization(), ["directory:read"])
    forwarded = {**bearer(token), "X-Forwarded-For": "198.51.100.23, 203.0.113.7"}

    def address_on_the_trail() -> str:
        assert client.get(f"/api/v1/organizations/{uuid.uuid4()}", headers=forwarded) \
            .status_code == 404
        with app.app_context():
            return audit_events(outcome="deny")[-1].request_ip

    assert address_on_the_trail() == "127.0.0.1"
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)  # restored after the test
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", 1)
    behind_proxies(app)
    assert address_on_the_trail() == "203.0.113.7"  # the one the trusted proxy added


def test_wrong_secrets_in_flight_at_once_each_take_a_place_in_the_budget(
        app, client, make, monkeypatch):
    """A request that authenticates no client is counted before its secret is checked: one
    still in flight (here: its secret being checked) holds its place, so another with the
    same claimed id from the same address cannot slip past the budget meanwhile (found by a
    race review: 40 wrong secrets at once, 8 to 11 checked against a budget of 5). A request
    that authenticates gives its place back."""
    from auth import server

    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "1 per minute")
    oauth_client, secret = make.client()
    checked, answers = [], []
    authenticate = server.AuditedAuthorizationServer.authenticate_client

    def authenticate_while_another_arrives(self, request, *args, **kwargs):
        checked.append(request)
        if len(checked) == 1:  # the first is being checked: a second arrives
            answers.append(client.post("/oauth/token", data=FORM, environ_base=STRANGER,
                                       headers=basic(oauth_client.client_id, "guess 2")))
        return authenticate(self, request, *args, **kwargs)

    monkeypatch.setattr(server.AuditedAuthorizationServer, "authenticate_client",
                        authenticate_while_another_arrives)
    first = client.post("/oauth/token", data=FORM, environ_base=STRANGER,
                        headers=basic(oauth_client.client_id, "guess 1"))

    assert first.status_code == 401
    assert_problem(answers[0], 429, "rate-limited")
    assert len(checked) == 1  # the second's secret was never checked
    # A request that authenticates gives its place back: from its address, a wrong secret
    # after it is still checked (401, not 429).
    monkeypatch.setattr(server.AuditedAuthorizationServer, "authenticate_client", authenticate)
    assert client.post("/oauth/token", data=FORM, environ_base=OWN,
                       headers=basic(oauth_client.client_id, secret)).status_code == 200
    assert client.post("/oauth/token", data=FORM, environ_base=OWN,
                       headers=basic(oauth_client.client_id, "typo")).status_code == 401


def test_a_client_refused_by_its_own_budget_has_not_failed_to_authenticate(
        app, client, make, monkeypatch):
    """Its requests authenticated: refused 429 by its own budget, they give their place in the
    failures budget back, and a wrong secret from its address is still checked (found by a
    review of the change)."""
    monkeypatch.setitem(app.config, "RATE_LIMIT_TOKEN", "2 per minute")
    oauth_client, secret = make.client()

    def token(secret_sent):
        return client.post("/oauth/token", data=FORM, environ_base=OWN,
                           headers=basic(oauth_client.client_id, secret_sent)).status_code

    assert [token(secret) for _ in range(4)] == [200, 200, 429, 429]
    assert token("wrong") == 401
