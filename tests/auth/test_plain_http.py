"""OAuth over plain http: the client's mistake (or the proxy's missing X-Forwarded-Proto),
answered 400 `invalid_request` on every OAuth endpoint, where authlib's exception was a 500."""

import pytest
import sqlalchemy as sa

from auth.models import AccessToken
from core.db import db
from core.web import behind_proxies
from tests.conftest import basic, bearer

PLAIN = ["http://imh.example.org", "http://10.0.0.5:8000", "http://[2001:db8::5]"]


def tokens_of(app, oauth_client) -> list:
    with app.app_context():
        return list(db.session.scalars(sa.select(AccessToken.revoked_at).where(
            AccessToken.client_id == oauth_client.id)))


def assert_refused(response):
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json == {"error": "invalid_request", "error_description":
                             "Send OAuth requests over https: OAuth 2 requires TLS"}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("base_url", PLAIN)
def test_a_token_request_over_plain_http_is_refused_and_issues_nothing(
        app, client, make, base_url):
    oauth_client, secret = make.client()

    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=basic(oauth_client.client_id, secret), base_url=base_url)

    assert_refused(response)
    assert tokens_of(app, oauth_client) == []


@pytest.mark.parametrize("base_url", PLAIN)
@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
def test_introspection_and_revocation_over_plain_http_are_refused_and_change_nothing(
        app, client, make, base_url, endpoint):
    oauth_client, secret = make.client()
    token = make.token(oauth_client=oauth_client)

    response = client.post(endpoint, data={"token": token},
                           headers=basic(oauth_client.client_id, secret), base_url=base_url)

    assert_refused(response)
    assert tokens_of(app, oauth_client) == [None]  # still live
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("base_url", ["http://localhost", "http://127.0.0.1:8000",
                                      "http://[::1]:8000", "https://imh.example.org"])
def test_tls_and_loopback_are_served(client, make, base_url):
    oauth_client, secret = make.client()

    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=basic(oauth_client.client_id, secret), base_url=base_url)

    assert response.status_code == 200, response.get_data(as_text=True)


def test_behind_a_trusted_proxy_that_ended_tls_the_request_is_https(
        app, client, make, monkeypatch):
    oauth_client, secret = make.client()
    ask = {"data": {"grant_type": "client_credentials"}, "base_url": "http://imh.example.org",
           "headers": {**basic(oauth_client.client_id, secret), "X-Forwarded-Proto": "https",
                       "X-Forwarded-For": "198.51.100.23"}}
    # Without TRUSTED_PROXIES, X-Forwarded-Proto is anyone's to write: not believed.
    assert_refused(client.post("/oauth/token", **ask))

    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)  # restored after the test
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", 1)
    behind_proxies(app)

    assert client.post("/oauth/token", **ask).status_code == 200



def test_a_host_werkzeug_cannot_read_is_named_as_the_fault_not_a_500(app, client, make):
    """A proxy may forward its upstream's name (`imh_web:8000`), which werkzeug empties, and
    authlib then raised even over https: a 500 on every token request (found by a review)."""
    oauth_client, secret = make.client()

    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={"Host": "imh_web:8000",
                                    **basic(oauth_client.client_id, secret)},
                           base_url="https://imh_web:8000")

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json == {"error": "invalid_request", "error_description":
                             "The Host header is not a host name (behind a proxy, forward "
                             "the client's)"}
    assert tokens_of(app, oauth_client) == []
