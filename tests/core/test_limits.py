"""Rate limits per client, security headers on every response."""

import time
import uuid

import flask_migrate
import pytest
import redis

from app import create_app
from core.db import db
from core.web import SECURITY_HEADERS
from tests.conftest import TEST_SECRET_KEY, assert_problem, basic, bearer


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


def test_the_token_endpoint_counts_each_claimed_client_wrong_secrets_included(
        app, client, make, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_OAUTH", "2 per minute")
    oauth_client, secret = make.client()
    form = {"grant_type": "client_credentials"}
    wrong = client.post("/oauth/token", data=form, headers=basic(oauth_client.id, "guess"))
    assert wrong.status_code == 401
    assert client.post("/oauth/token", data=form,
                       headers=basic(oauth_client.id, secret)).status_code == 200
    limited = client.post("/oauth/token", data=form, headers=basic(oauth_client.id, secret))
    assert_problem(limited, 429, "rate-limited")
    assert "Retry-After" in limited.headers
    other, other_secret = make.client()
    assert client.post("/oauth/token", data=form,
                       headers=basic(other.id, other_secret)).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/me", "/healthz", "/openapi.json", "/nowhere",
                                  "/apidocs/"])
def test_every_response_carries_the_security_headers(client, make, path):
    response = client.get(path, headers=bearer(make.token()))
    for name, value in SECURITY_HEADERS.items():
        if name == "Content-Security-Policy" and path.startswith("/apidocs"):
            assert "frame-ancestors 'none'" in response.headers[name]
        else:
            assert response.headers[name] == value, name
    assert response.headers["Cache-Control"] == "no-store"


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
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert int(third.headers["X-RateLimit-Reset"]) - time.time() <= 61
    assert client.get("/healthz").headers.get("X-RateLimit-Limit") is None  # not counted


def test_a_budget_that_does_not_parse_stops_the_start(tmp_path):
    with pytest.raises(ValueError):
        create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    "RATE_LIMIT_API": "lots"})


def test_with_redis_url_the_counters_live_in_redis(app, tmp_path):
    """Every worker and host counts one budget: the counters are in Redis, not a process."""
    claimed = f"nobody-{uuid.uuid4()}"
    limited_app = create_app({
        "TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "LOG_LEVEL": "WARNING",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'limits.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/0", "RATE_LIMIT_OAUTH": "2 per minute",
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
