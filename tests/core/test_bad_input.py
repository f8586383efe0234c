"""Bad input at the request boundary, sent to PATCH /api/v1/organizations/{own id}, and the one
error shape (RFC 9457 problem+json) for every failure, including the unexpected ones."""

import io
import json
import logging

import pytest
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData
from werkzeug.test import EnvironBuilder, run_wsgi_app

from core.db import db
from tests.conftest import assert_problem, basic, bearer, make_app

KIB = 1024




@pytest.fixture
def own(make):
    """(url, headers) of the caller's own listing, with a directory:read+write token."""
    org = make.organization(name="Riverbend Infant Mental Health", counties=("Washtenaw",),
                            languages=("en",))
    token = make.token(org, ["directory:read", "directory:write"])
    return f"/api/v1/organizations/{org.id}", bearer(token)


@pytest.fixture
def unchanged(client, own):
    """Snapshot the listing now; calling the result asserts it is still the same."""
    url, headers = own

    def snapshot():
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        return response.json, response.headers["ETag"]

    before = snapshot()
    return lambda: snapshot() == before


def send(client, own, body, content_type="application/json"):
    url, headers = own
    if isinstance(body, str):
        body = body.encode()
    headers = dict(headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.patch(url, data=body, headers=headers)


# -- media type, syntax, size, depth ------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/plain", '{"accepting_referrals": true}'),
    ("application/x-www-form-urlencoded", "accepting_referrals=true"),
    ("multipart/form-data; boundary=x",
     '--x\r\nContent-Disposition: form-data; name="accepting_referrals"\r\n\r\ntrue\r\n--x--'),
    ("application/xml", "<accepting_referrals>true</accepting_referrals>"),
    ("text/json", '{"accepting_referrals": true}'),
    (None, '{"accepting_referrals": true}'),
])
def test_other_media_types_are_415(client, own, unchanged, content_type, body):
    response = send(client, own, body, content_type)

    assert_problem(response, 415, "unsupported-media-type")
    assert unchanged()


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_media_type_is_accepted(client, own, content_type):
    response = send(client, own, '{"accepting_referrals": true}', content_type)

    assert response.status_code == 200, response.json
    assert response.json["accepting_referrals"] is True


@pytest.mark.parametrize("body", [
    "{bad", "", " ", '{"accepting_referrals": }', "{'accepting_referrals': true}",
    '{"accepting_referrals": true,}', '{"accepting_referrals": true} {}', "[1, 2",
    '{"accepting_referrals": tru}', b'{"counties": ["\xff\xfe"]}', '"unterminated',
], ids=["brace", "empty", "blank", "no-value", "single-quotes", "trailing-comma",
        "two-documents", "open-array", "bad-literal", "invalid-utf8", "open-string"])
def test_malformed_json_is_400(client, own, unchanged, body):
    response = send(client, own, body)

    assert_problem(response, 400, "malformed-request")
    assert unchanged()


@pytest.mark.parametrize("body", [
    "[]", '[{"accepting_referrals": true}]', '"accepting_referrals"', "42", "true", "null",
])
def test_json_that_is_not_an_object_is_422(client, own, unchanged, body):
    response = send(client, own, body)

    problem = assert_problem(response, 422, "validation-error")
    assert list(problem["errors"]) == ["_schema"]
    assert unchanged()


@pytest.mark.parametrize("size", [64 * KIB + 1, 1024 * KIB], ids=["64KiB+1", "1MiB"])
def test_body_over_64_kib_is_413(client, own, unchanged, size):
    prefix, suffix = '{"counties": ["', '"]}'
    body = prefix + "a" * (size - len(prefix) - len(suffix)) + suffix
    assert len(body.encode()) == size

    response = send(client, own, body)

    assert_problem(response, 413, "payload-too-large")
    assert unchanged()


def send_chunked(client, url, headers, body: bytes, terminated=True):
    """As gunicorn hands over a chunked body: no Content-Length (the test client would set
    one), a stream that ends itself (`wsgi.input_terminated`; werkzeug heeds the key, whatever
    its value)."""
    return client.open(url, method="PATCH" if "organizations" in url else "POST",
                       input_stream=io.BytesIO(body),
                       headers={**headers, "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": terminated,
                                          "CONTENT_LENGTH": ""})


@pytest.mark.parametrize("terminated", [True, False])
def test_a_chunked_body_over_64_kib_is_413_not_cut_short(client, own, unchanged, terminated):
    """werkzeug stops such a stream at the limit without a word: the JSON below would be
    applied with its padding cut."""
    url, headers = own
    body = b'{"accepting_referrals": true}' + b" " * (70 * KIB)
    response = send_chunked(client, url, {**headers, "Content-Type": "application/json"}, body,
                            terminated)
    assert_problem(response, 413, "payload-too-large")
    assert unchanged()


def test_a_chunked_token_request_over_64_kib_is_413_not_a_token(client, make):
    from tests.conftest import basic

    oauth_client, secret = make.client(make.organization(), ["directory:read"])
    body = b"grant_type=client_credentials&pad=" + b"a" * (70 * KIB) + b"&scope=nope"
    response = send_chunked(client, "/oauth/token", {
        **basic(oauth_client.id, secret),
        "Content-Type": "application/x-www-form-urlencoded"}, body)
    assert response.status_code == 413
    assert "access_token" not in response.get_data(as_text=True)


class _BrokenChunks(io.RawIOBase):
    """A chunked body as gunicorn reads it when the client's framing is wrong or the client
    hangs up mid-body: each read raises what gunicorn raises."""

    def __init__(self, error):
        self.error = error

    def read(self, size=-1):
        raise self.error


@pytest.mark.parametrize("error", [InvalidChunkSize(b"zz"), ChunkMissingTerminator(b"XX"),
                                   NoMoreData(b"")], ids=type)
def test_a_chunked_body_the_server_cannot_read_is_400_not_500(
        client, own, unchanged, caplog, error):
    url, headers = own
    response = client.open(url, method="PATCH",
                           headers={**headers, "Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input": _BrokenChunks(error),
                                              "wsgi.input_terminated": True,
                                              "CONTENT_LENGTH": ""})

    assert_problem(response, 400, "malformed-request")
    assert unchanged()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_chunked_body_within_the_limit_is_read_whole(client, own):
    url, headers = own
    response = send_chunked(client, url, {**headers, "Content-Type": "application/json"},
                            b'{"accepting_referrals": true}')
    assert response.status_code == 200, response.json
    assert response.json["accepting_referrals"] is True


def test_body_of_exactly_64_kib_is_read(client, own):
    body = '{"accepting_referrals": true}'
    body += " " * (64 * KIB - len(body))  # JSON may carry trailing whitespace

    response = send(client, own, body)

    assert response.status_code == 200, response.json
    assert response.json["accepting_referrals"] is True


@pytest.mark.parametrize("body", [
    "[" * 1000 + "]" * 1000,
    '{"a":' * 1000 + "1" + "}" * 1000,
    '{"counties": ' + "[" * 1000 + "]" * 1000 + "}",
    '{"capacity": ' + '{"status":' * 1000 + '"full"' + "}" * 1000 + "}",
    "[" * 10_000,  # unbalanced, still refused before it is parsed
], ids=["arrays", "objects", "inside-a-field", "inside-capacity", "10k-open"])
def test_deeply_nested_json_is_refused(client, own, unchanged, body):
    response = send(client, own, body)

    assert_problem(response, 400, "malformed-request")
    assert unchanged()


@pytest.mark.parametrize("county", ["[" * 60, "{" * 60, 'a\\"' + "[" * 60])
def test_brackets_inside_strings_do_not_count_as_depth(client, own, county):
    body = json.dumps({"counties": [county]})

    response = send(client, own, body)

    assert response.status_code == 200, response.json
    assert response.json["counties"] == [county]


# -- well-formed JSON with the wrong fields -----------------------------------------------------



@pytest.mark.parametrize(("body", "fields"), [
    ({"name": "Renamed"}, ["name"]),
    ({"id": "7b0e7d36-1b1e-4a8e-9a55-c8d3b6fb2c11"}, ["id"]),
    ({"type": "hospital"}, ["type"]),
    ({"Accepting_Referrals": True}, ["Accepting_Referrals"]),
    ({"accepting_referrals": True, "color": "red"}, ["color"]),
    ({"capacity": {"status": "full", "color": "red"}}, ["capacity.color"]),
    ({"capacity": {"status": "full", "updated_at": "2026-01-01T00:00:00Z"}},
     ["capacity.updated_at"]),
    ({"nickname": "x", "founded": 1990}, ["nickname", "founded"]),
], ids=lambda v: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else None)
def test_unknown_fields_are_422_and_named(client, own, unchanged, body, fields):
    response = send(client, own, json.dumps(body))

    problem = assert_problem(response, 422, "validation-error")
    for field in fields:
        assert field in problem["errors"], problem["errors"]
    assert unchanged()


@pytest.mark.parametrize(("body", "field"), [
    ({"accepting_referrals": "yes"}, "accepting_referrals"),
    ({"accepting_referrals": "true"}, "accepting_referrals"),
    pytest.param({"accepting_referrals": 1}, "accepting_referrals"),
    pytest.param({"accepting_referrals": 0}, "accepting_referrals"),
    pytest.param({"accepting_referrals": 1.0}, "accepting_referrals"),
    ({"accepting_referrals": None}, "accepting_referrals"),
    ({"accepting_referrals": []}, "accepting_referrals"),
    ({"counties": "Washtenaw"}, "counties"),
    ({"counties": None}, "counties"),
    ({"counties": [1]}, "counties.0"),
    ({"counties": ["Wayne", ""]}, "counties.1"),
    ({"counties": ["Wayne", "   "]}, "counties.1"),
    ({"counties": ["x" * 101]}, "counties.0"),
    ({"counties": ["Wayne", "wayne"]}, "counties"),
    ({"counties": [{"name": "Wayne"}]}, "counties.0"),
    ({"languages": ["not a tag!"]}, "languages.0"),
    ({"languages": ["en", "en_US"]}, "languages.1"),
    ({"languages": "en"}, "languages"),
    ({"languages": [None]}, "languages.0"),
    ({"languages": ["en", "EN"]}, "languages"),
    ({"capacity": {"status": "open"}}, "capacity.status"),
    ({"capacity": {"status": "Full"}}, "capacity.status"),
    ({"capacity": {}}, "capacity.status"),
    ({"capacity": {"waitlist": "unknown"}}, "capacity.status"),
    ({"capacity": {"status": "waitlist", "waitlist": "soon"}}, "capacity.waitlist"),
    ({"capacity": {"status": "waitlist", "waitlist": 3}}, "capacity.waitlist"),
    pytest.param({"capacity": "full"}, "capacity"),
    pytest.param({"capacity": ["full"]}, "capacity"),
    ({"capacity": None}, "capacity"),
], ids=lambda v: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else None)
def test_wrong_types_are_422_with_field_paths(client, own, unchanged, body, field):
    response = send(client, own, json.dumps(body))

    problem = assert_problem(response, 422, "validation-error")
    assert field in problem["errors"], problem["errors"]
    assert all(isinstance(m, str) for m in problem["errors"][field])
    assert unchanged()


def test_all_invalid_fields_are_named_at_once(client, own, unchanged):
    body = {"accepting_referrals": "yes", "languages": ["en", "!"],
            "capacity": {"status": "open"}, "extra": 1}

    response = send(client, own, json.dumps(body))

    problem = assert_problem(response, 422, "validation-error")
    assert {"accepting_referrals", "languages.1", "capacity.status", "extra"} <= set(
        problem["errors"])
    assert unchanged()


def test_duplicate_member_names_are_refused(client, own, unchanged):
    response = send(client, own, '{"accepting_referrals": false, "accepting_referrals": true}')

    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert_problem(response, response.status_code,
                   "malformed-request" if response.status_code == 400 else "validation-error")
    assert unchanged()


def test_one_bad_field_rejects_the_good_ones_too(client, own, unchanged):
    response = send(client, own, json.dumps({"accepting_referrals": True, "counties": "Wayne"}))

    assert_problem(response, 422, "validation-error")
    assert unchanged()


# -- errors outside the body --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["DELETE", "PUT", "POST"])
def test_method_not_allowed_is_405_with_allow(client, own, unchanged, method):
    url, headers = own

    response = client.open(url, method=method, json={"accepting_referrals": True},
                           headers=headers)

    assert_problem(response, 405, "method-not-allowed")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PATCH"} <= allowed
    assert method not in allowed
    # The API answers HEAD with 405 (it would run the GET whole): not offered either.
    assert "HEAD" not in allowed
    assert unchanged()


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v2/organizations",
                                  "/api/v1/organizations/x/y", "/api/v1/"])
def test_unknown_path_is_404(client, own, path):
    _, headers = own

    for request_headers in ({}, headers):
        response = client.get(path, headers=request_headers)
        body = assert_problem(response, 404, "not-found")
        assert body["instance"] == path


@pytest.mark.parametrize(("body", "content_type", "status"), [
    ("{bad", "application/json", 400),
    ("x", "text/plain", 415),
    ('{"x": 1}', "application/json", 422),
])
def test_problem_instance_is_the_request_path(client, own, body, content_type, status):
    url, _ = own

    response = send(client, own, body, content_type)

    assert response.status_code == status
    assert response.json["instance"] == url


def test_unexpected_exception_is_500_without_its_message(app):
    secret = "family Doe, DOB 2025-01-01, at /srv/imh/secret.py line 42"
    fresh = make_app(app.config["SQLALCHEMY_DATABASE_URI"])

    @fresh.get("/boom")
    def boom():
        raise RuntimeError(secret)

    @fresh.get("/boom-key")
    def boom_key():
        return {}["missing-" + secret]

    try:
        client = fresh.test_client()
        for path in ("/boom", "/boom-key"):
            response = client.get(path, headers={"X-Request-ID": "boom-1"})
            body = assert_problem(response, 500, "internal-error")
            text = response.get_data(as_text=True)
            assert secret not in text
            assert "RuntimeError" not in text and "KeyError" not in text
            assert "secret.py" not in text
            assert body["request_id"] == "boom-1"
            assert body["instance"] == path
    finally:
        with fresh.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("body", [
    '{"counties": ["Wayne\\u0000County"]}',
    '{"counties": ["\\ud800"]}',
    '{"languages": ["en"], "counties": ["\\udfff Wayne"]}',
], ids=["nul", "lone-high-surrogate", "lone-low-surrogate"])
def test_text_that_is_not_storable_is_refused(client, own, unchanged, body):
    response = send(client, own, body)

    assert response.status_code in (400, 422), response.get_data(as_text=True)
    slug = "malformed-request" if response.status_code == 400 else "validation-error"
    assert_problem(response, response.status_code, slug)
    assert unchanged()


@pytest.mark.parametrize("host", ["xn--", "XN--.example", "xn--a.example"])
@pytest.mark.parametrize("method, path", [
    ("POST", "/oauth/token"), ("POST", "/oauth/introspect"), ("POST", "/oauth/revoke"),
    ("GET", "/.well-known/oauth-authorization-server"), ("GET", "/api/v1/me")])
def test_a_host_header_that_is_no_host_name_is_400(app, make, host, method, path):
    """werkzeug raises as it builds the URL from such a Host (an IDNA label that decodes to
    nothing), which the OAuth endpoints and their metadata read: a 500 each."""
    oauth_client, secret = make.client()
    environ = EnvironBuilder(path, method=method, data={"grant_type": "client_credentials"},
                             headers={"Host": host, **basic(oauth_client.client_id, secret)})
    # Called directly: the test client would build that URL itself, and raise.
    body, status, headers = run_wsgi_app(app, environ.get_environ(), buffered=True)
    response = app.response_class(b"".join(body), status, headers)

    assert_problem(response, 400, "malformed-request")
    assert response.json["detail"] == "The Host header is not a host name"


def test_an_internationalised_host_name_is_served(client, make):
    oauth_client, secret = make.client()

    response = client.post("/oauth/token", headers={"Host": "xn--bcher-kva.example", **basic(
        oauth_client.client_id, secret)}, data={"grant_type": "client_credentials"},
        base_url="https://xn--bcher-kva.example")

    assert response.status_code == 200, response.get_data(as_text=True)
