"""Instants as partners send them: RFC 3339's forms, and the signing-time tolerance."""

from datetime import UTC, datetime, timedelta

import pytest

from core import time as clock
from tests.conftest import bearer

T0 = datetime(2026, 9, 1, 14, 5, 9, 123456, tzinfo=UTC)


def _z(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def parties(make):
    clinic = make.organization(name="Lakeshore Pediatrics", type="pediatric_primary_care")
    provider = make.organization(name="Riverbend IMH")
    family = make.family(clinic)
    return clinic, provider, family, bearer(make.token(clinic, lifetime=10**7))


def _record(client, parties, **fields):
    clinic, provider, family, headers = parties
    body = {"grantor": {"caregiver_id": str(family.caregivers[0].id),
                        "legal_authority": "parent"},
            "organization_ids": [str(clinic.id), str(provider.id)],
            "purposes": ["referral"], "categories": ["identity"],
            "expires_at": _z(T0 + timedelta(days=30)), "method": "written",
            "signed_at": _z(T0 - timedelta(hours=1)), "explained_in_language": "en",
            "interpreter_used": False, "revocation_rights_explained": True}
    body.update(fields)
    return client.post(f"/api/v1/families/{family.id}/consents", json=body, headers=headers)


@pytest.mark.parametrize("written", ["2026-10-01t09:30:00z", "2026-10-01t09:30:00Z",
                                     "2026-10-01T09:30:00z"])
def test_rfc3339_lower_case_t_and_z_are_date_times(client, parties, written):
    """RFC 3339 5.6: "the "T" and "Z" characters in this syntax may alternatively be lower
    case "t" or "z" respectively". The contract's times are RFC 3339 (API.md, and
    `format: date-time` in the OpenAPI document); the service answers 422 "Not an RFC 3339
    date-time" for these."""
    clock.freeze(T0)

    answer = _record(client, parties, expires_at=written)

    assert answer.status_code == 201, answer.json
    assert answer.json["expires_at"] == "2026-10-01T09:30:00.000000Z"


def test_a_signing_time_within_the_tolerated_skew_with_effective_at_left_to_default(
        client, parties):
    """`signed_at` up to five minutes ahead of the service's clock is tolerated
    (consent/service.py SIGNING_SKEW; a test records one with `effective_at` equal to it).
    Left out, `effective_at` defaults to now, which is then before `signed_at`, and the
    consent is refused with an error on `effective_at`, a field the partner did not send."""
    clock.freeze(T0)

    answer = _record(client, parties, signed_at=_z(T0 + timedelta(minutes=1)))

    assert answer.status_code == 201, answer.json.get("errors")


@pytest.mark.parametrize("written", ["2026-10-01T09:30:00+05:99", "2026-10-01T09:30:00+00:60"])
def test_an_offset_whose_minutes_pass_59_is_not_an_instant(client, parties, written):
    """RFC 3339 `time-minute` runs 00-59; Python's parser read +05:99 as +06:39, so a typo
    moved the instant silently (here a consent's end; as much an auditor's range)."""
    clock.freeze(T0)

    answer = _record(client, parties, expires_at=written)

    assert answer.status_code == 422
    assert "expires_at" in answer.json["errors"]


def test_an_offset_at_59_minutes_is_one(client, parties):
    clock.freeze(T0)
    answer = _record(client, parties, expires_at="2026-10-01T09:30:00+05:59")
    assert answer.status_code == 201, answer.json
    assert answer.json["expires_at"] == "2026-10-01T03:31:00.000000Z"
