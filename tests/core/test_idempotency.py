"""Idempotency-Key: a retry is the same request when its JSON body is the same JSON, however
it is serialized; a key stored before that rule still answers its retries."""

import hashlib
import json

import pytest
import sqlalchemy as sa

from core.db import db
from core.idempotency import IdempotencyKey
from tests.conftest import assert_problem, bearer

FAMILIES = "/api/v1/families"
FAMILY = {"child": {"given_name": "Amara", "family_name": "Okafor", "birth_date": "2026-03-02",
                    "county": "Washtenaw"},
          "caregivers": [{"given_name": "Ngozi", "family_name": "Okafor",
                          "relationship": "mother", "has_legal_authority": True,
                          "phone": "+17345550101"}],
          "preferred_language": "es", "interpreter_needed": True,
          "cultural_considerations": "Abuela cría al bebé con la madre."}

#: The same JSON written again as another library or process would write it.
REWRITTEN = {
    "members reordered": lambda body: json.dumps(dict(reversed(body.items()))),
    "pretty-printed": lambda body: json.dumps(body, indent=2, sort_keys=True),
    "non-ASCII escaped": lambda body: json.dumps(body, ensure_ascii=True),
    "compact": lambda body: json.dumps(body, separators=(",", ":"), ensure_ascii=False),
}


@pytest.fixture
def keyed(make):
    """Headers of a custodian's families:write call under one Idempotency-Key."""
    token = make.token(make.organization(), ["families:read", "families:write"])
    return bearer(token) | {"Idempotency-Key": "intake-0042",
                            "Content-Type": "application/json"}


def post(client, headers, raw: str):
    return client.post(FAMILIES, data=raw.encode(), headers=headers)


@pytest.mark.parametrize("rewrite", REWRITTEN)
def test_a_retry_with_the_same_json_serialized_again_is_a_replay(client, keyed, rewrite):
    """RFC 8259: the order of an object's members and the whitespace between tokens mean
    nothing, so the retry is the same request and answers the first answer again."""
    first = post(client, keyed, json.dumps(FAMILY, ensure_ascii=False))
    assert first.status_code == 201, first.json

    again = post(client, keyed, REWRITTEN[rewrite](FAMILY))

    assert again.status_code == 201, again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]


def test_a_retry_with_another_json_value_is_still_refused(client, keyed):
    first = post(client, keyed, json.dumps(FAMILY))
    assert first.status_code == 201, first.json

    again = post(client, keyed, json.dumps({**FAMILY, "interpreter_needed": False}, indent=1))

    assert_problem(again, 422, "idempotency-key-reused")


def test_a_key_stored_with_the_bytes_fingerprint_still_answers_its_retry(app, client, keyed):
    """A key stored before fingerprints were of canonical JSON holds the digest of the
    method, the path and the body's bytes: a retry of those bytes within the key's 24 hours
    is answered again, not refused as another request."""
    raw = json.dumps(FAMILY, indent=2)
    first = post(client, keyed, raw)
    assert first.status_code == 201, first.json
    with app.app_context():
        bytes_fingerprint = hashlib.sha256(f"POST {FAMILIES}\n{raw}".encode()).hexdigest()
        db.session.execute(sa.update(IdempotencyKey).values(request_hash=bytes_fingerprint))
        db.session.commit()

    again = post(client, keyed, raw)

    assert again.status_code == 201, again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
