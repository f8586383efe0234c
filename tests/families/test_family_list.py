"""The custodian's list of its families: most recently changed first, and `updated_since`
for a partner keeping its own copy in step."""

from datetime import UTC, datetime, timedelta

import pytest

from core import time as clock
from tests.conftest import assert_validation_error, bearer

FAMILIES = "/api/v1/families"
T0 = datetime(2026, 9, 1, 14, 5, 9, 123456, tzinfo=UTC)


def _body(given_name) -> dict:
    return {"child": {"given_name": given_name, "family_name": "Okafor",
                      "birth_date": "2026-03-02", "county": "Washtenaw"},
            "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                            "relationship": "mother", "has_legal_authority": True}]}


@pytest.fixture
def headers(make):
    clock.freeze(T0)
    organization = make.organization(name="Riverbend Infant Mental Health")
    yield bearer(make.token(organization, ["families:read", "families:write"],
                            lifetime=30 * 86400))
    clock.freeze(None)


def _create(client, headers, name, at) -> str:
    clock.freeze(at)
    response = client.post(FAMILIES, json=_body(name), headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def _walk(client, headers, **query) -> list[str]:
    ids, cursor = [], None
    while True:
        response = client.get(FAMILIES, headers=headers,
                              query_string=query | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.get_data(as_text=True)
        ids += [item["id"] for item in response.json["items"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return ids


def test_the_list_offers_updated_since(client, headers):
    """A family changed long after creation is found without walking every page."""
    old = _create(client, headers, "Amara", T0 - timedelta(days=2))
    _create(client, headers, "Bola", T0 - timedelta(days=2))
    clock.freeze(T0)
    changed = client.patch(f"{FAMILIES}/{old}", json={"preferred_language": "en"},
                           headers=headers)
    assert changed.status_code == 200

    assert _walk(client, headers, updated_since=(T0 - timedelta(seconds=1)).isoformat()) == \
        [old]
    assert _walk(client, headers, updated_since=T0.isoformat()) == [old]  # at or after
    assert _walk(client, headers,
                 updated_since=(T0 + timedelta(microseconds=1)).isoformat()) == []


def test_the_list_is_most_recently_changed_first_in_pages(client, headers):
    """Newest first by the last change, a record's creation being its first; pages of 2 walk
    the same order, with or without the filter."""
    ids = [_create(client, headers, name, T0 + timedelta(minutes=n))
           for n, name in enumerate(["Amara", "Bola", "Chidi", "Dayo", "Emeka"])]
    clock.freeze(T0 + timedelta(hours=1))
    client.patch(f"{FAMILIES}/{ids[1]}", json={"interpreter_needed": True}, headers=headers)
    expected = [ids[1], ids[4], ids[3], ids[2], ids[0]]

    assert _walk(client, headers, limit=2) == expected
    assert _walk(client, headers, limit=2,
                 updated_since=(T0 + timedelta(minutes=2)).isoformat()) == expected[:4]


@pytest.mark.parametrize("since", ["yesterday", "2026-09-01", "2026-09-01T14:05:09",
                                   "0001-01-01T00:00:00Z"])
def test_updated_since_is_an_rfc_3339_instant(client, headers, since):
    response = client.get(FAMILIES, headers=headers, query_string={"updated_since": since})
    assert_validation_error(response, "updated_since")
