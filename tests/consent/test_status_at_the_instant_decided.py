"""A consent record's `status` is the one at the instant its view was decided."""

from datetime import UTC, datetime, timedelta

from core import time as clock
from tests.referrals.conftest import network


class _Ticking(datetime):
    """A clock that moves one microsecond each time it is read, from `base`."""

    base: datetime
    reads = 0

    @classmethod
    def now(cls, tz=None):
        cls.reads += 1
        return cls.base + timedelta(microseconds=cls.reads)


def test_a_consent_read_as_it_expires_never_says_expired_beside_what_it_showed_under_it(
        client, make, monkeypatch):
    """What a party sees of a consent record (the grantor's legal authority, `identity`) is
    decided at one instant; `status` was read again a moment later, so a read as the consent
    ended said `expired` beside facts shown, and accounted, under that very consent."""
    expires = datetime(2026, 6, 2, 16, 0, tzinfo=UTC)
    clock.freeze(expires - timedelta(days=1))
    net = network(make)
    consent = make.consent(net.family, [net.clinic, net.stranger], categories=("identity",),
                           expires_at=expires)
    clock.freeze(None)
    monkeypatch.setattr(clock, "datetime", _Ticking)
    answers = set()
    for before in range(1, 200):
        _Ticking.base, _Ticking.reads = expires - timedelta(microseconds=before), 0
        got = client.get(f"/api/v1/consents/{consent.id}", headers=net.as_stranger)
        if got.status_code == 200:
            answers.add((got.json["status"], "identity" in got.json["redacted"]))
    assert ("expired", False) not in answers
    assert ("active", False) in answers
