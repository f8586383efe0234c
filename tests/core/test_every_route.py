"""Conventions every route keeps alike, checked on each of them: JSON bodies only, at most
64 KiB (chunked too), and cursors that only the list which issued them takes."""

import io
import re

import pytest

from tests.conftest import assert_problem, assert_validation_error
from tests.referrals.conftest import FULL, network, send

KIB = 1024


@pytest.fixture
def world(client, make):
    """The referral network with a full consent, one referral, and the clinic's ids by the
    names the routes give them."""
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL)
    net.referral_id = send(client, net).json["id"]
    net.consent_id = client.get(f"/api/v1/families/{net.family.id}/consents",
                                headers=net.as_clinic).json["items"][0]["id"]
    net.ids = {"organization_id": net.clinic.id, "family_id": net.family.id,
               "consent_id": net.consent_id, "referral_id": net.referral_id}
    return net


def body_routes(app, world) -> list[tuple[str, str]]:
    """(method, url) of every API route that takes a body (a route with a path parameter
    `world.ids` does not name fails here: name it)."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            url = re.sub(r"<uuid:(\w+)>", lambda match: str(world.ids[match[1]]), rule.rule)
            routes += [(method, url) for method in sorted(rule.methods & {"POST", "PATCH"})]
    assert routes
    return routes


@pytest.mark.parametrize("content_type", ["text/json", "application/json-patch+json",
                                          "application/merge-patch+json", None])
def test_every_body_route_refuses_other_media_types(app, client, world, content_type):
    for method, url in body_routes(app, world):
        headers = dict(world.as_clinic)
        if content_type:
            headers["Content-Type"] = content_type
        response = client.open(url, method=method, data=b'{"x": 1}', headers=headers)
        assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("chunked", [False, True])
def test_every_body_route_refuses_bodies_over_64_kib(app, client, world, chunked):
    """With an Idempotency-Key too, which reads the body before the route does."""
    big = b'{"x": "' + b"a" * (70 * KIB) + b'"}'
    for method, url in body_routes(app, world):
        headers = {**world.as_clinic, "Content-Type": "application/json",
                   "Idempotency-Key": "big"}
        if chunked:
            response = client.open(url, method=method, input_stream=io.BytesIO(big),
                                   headers={**headers, "Transfer-Encoding": "chunked"},
                                   environ_overrides={"wsgi.input_terminated": True,
                                                      "CONTENT_LENGTH": ""})
        else:
            response = client.open(url, method=method, data=big, headers=headers)
        assert_problem(response, 413, "payload-too-large")


def test_a_cursor_is_taken_only_by_the_list_that_issued_it(client, make, world):
    headers = world.as_clinic
    make.family(world.clinic, given_name="Second")
    for _ in range(2):
        client.post(f"/api/v1/referrals/{world.referral_id}/notes", json={"body": "n"},
                    headers=headers)
    lists = ["/api/v1/organizations", "/api/v1/families", "/api/v1/audit/events",
             f"/api/v1/referrals/{world.referral_id}/notes",
             f"/api/v1/families/{world.family.id}/consents", "/api/v1/referrals",
             f"/api/v1/referrals/{world.referral_id}/events",
             f"/api/v1/families/{world.family.id}/disclosures"]
    cursors = {url: client.get(url, query_string={"limit": "1"},
                               headers=headers).json["next_cursor"] for url in lists[:4]}
    for source, cursor in cursors.items():
        assert cursor, source
        for target in lists:
            if target != source:
                response = client.get(target, query_string={"cursor": cursor}, headers=headers)
                assert_validation_error(response, "cursor")
