"""`flask referrals hold-expired` decides each batch, and dates each hold, at the instant it
holds the batch, not when the sweep began (referrals/cli.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from core import time as clock
from referrals import service
from tests.conftest import statements_sent
from tests.referrals.conftest import FULL, move, network, send

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: The sweep starts on day 20; the family's first consent ended on day 9.
SWEEP = START + timedelta(days=20)


@pytest.fixture
def accepted_pair(client, make):
    """Two accepted referrals of one family under a consent that has since expired:
    (net, first, second) in the order the sweep takes them (by id)."""
    clock.freeze(START)
    net = network(make)
    make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                 effective_at=START - timedelta(days=1), expires_in_days=10)
    ids = []
    for _ in range(2):
        sent = send(client, net)
        assert sent.status_code == 201, sent.json
        moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                     status="accepted")
        assert moved.status_code == 200, moved.json
        ids.append(sent.json["id"])
    first, second = sorted(ids)
    clock.freeze(SWEEP)
    return net, first, second


def _sweep_in_batches_of_one(app, monkeypatch, between):
    """Run the command as cron would, its batches one referral each (as a sweep over more
    than 200 open referrals has several), with `between()` happening between two batches."""
    original = service.hold_unsupported

    def batch_of_one(*, after=None, batch=200):
        if after is not None:
            between()
        return original(after=after, batch=1)

    monkeypatch.setattr(service, "hold_unsupported", batch_of_one)
    result = CliRunner().invoke(app.cli, ["referrals", "hold-expired"])
    assert result.exit_code == 0, result.output


def test_the_sweep_does_not_hold_a_referral_a_consent_covers_when_it_gets_to_it(
        app, client, make, monkeypatch, accepted_pair):
    """A minute into the sweep the clinic records a new consent covering the family; a
    minute later the sweep's next batch reaches the second referral, covered by then: it is
    left as it is (no false `consent_ended` hold, timeline entry or audit event)."""
    net, first, second = accepted_pair

    def new_consent():
        clock.freeze(SWEEP + timedelta(minutes=1))
        make.consent(net.family, [net.clinic, net.provider], categories=FULL,
                     effective_at=clock.now(), expires_in_days=180)
        clock.freeze(SWEEP + timedelta(minutes=2))

    _sweep_in_batches_of_one(app, monkeypatch, new_consent)

    seen = client.get(f"/api/v1/referrals/{second}", headers=net.as_provider).json
    assert (seen["status"], seen.get("status_reason")) == ("accepted", None)


def test_a_hold_the_sweep_makes_is_seen_by_a_partner_polling_updated_since(
        app, client, monkeypatch, accepted_pair):
    """A partner polls `updated_since` with the instant of its last poll, a minute into the
    sweep; the sweep holds the second referral a minute later and dates the change then, so
    the partner's next poll shows the hold."""
    net, first, second = accepted_pair
    polled_at = SWEEP + timedelta(minutes=1)

    def partner_polls():
        clock.freeze(polled_at)
        client.get("/api/v1/referrals?direction=received&updated_since="
                   + SWEEP.isoformat().replace("+00:00", "Z"), headers=net.as_provider)
        clock.freeze(SWEEP + timedelta(minutes=2))

    _sweep_in_batches_of_one(app, monkeypatch, partner_polls)
    clock.freeze(SWEEP + timedelta(minutes=3))

    since = polled_at.isoformat().replace("+00:00", "Z")
    changed = client.get(f"/api/v1/referrals?direction=received&updated_since={since}",
                         headers=net.as_provider).json["items"]
    assert second in [r["id"] for r in changed]


def test_a_sweep_batch_decides_its_families_over_one_load_of_their_consents(app, client, make):
    """Three families' accepted referrals; one family's consent has ended by the sweep. The
    batch holds exactly that family's referral, and loads the three families' consents in
    one statement (it was two per referral: a sweep of thousands sent thousands)."""
    clock.freeze(START)
    net = network(make)
    families = [net.family] + [make.family(net.clinic, given_name=f"Child{n}") for n in (1, 2)]
    referrals = []
    for n, family in enumerate(families):
        make.consent(family, [net.clinic, net.provider], categories=FULL,
                     effective_at=START - timedelta(days=1), expires_in_days=10 if n else 90)
        sent = send(client, net, family_id=str(family.id))
        moved = move(client, sent.json["id"], net.as_provider, sent.headers["ETag"],
                     status="accepted")
        assert moved.status_code == 200, moved.json
        referrals.append(sent.json["id"])
    clock.freeze(SWEEP)
    with statements_sent(app) as statements:
        result = CliRunner().invoke(app.cli, ["referrals", "hold-expired"])
    assert result.exit_code == 0, result.output
    assert sum("consent_parties" in s for s, _ in statements) == 1
    statuses = [client.get(f"/api/v1/referrals/{rid}", headers=net.as_clinic).json["status"]
                for rid in referrals]
    assert statuses == ["accepted", "on_hold", "on_hold"]
