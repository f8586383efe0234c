"""Fuzzing from the contract: schemathesis drives every operation of the OpenAPI document
in-process, authenticated, with schema-valid and schema-invalid data, then chains operations
into scenarios, and holds every answer to the document with every check it has but one.

The seed, the number of cases and the checks are in schemathesis.toml. Each case runs in a
savepoint of the test's transaction, rolled back after it, so every case meets the same
network and replays the same way.
"""

import atexit
import base64
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import CHECKS, load_all_checks

from openapi.spec import COMMITTED
from tests.fuzz_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    build_network,
    rolled_back,
    savepoint,
)

# Hypothesis keeps caches (constants, Unicode tables) in .hypothesis/: not in the checkout.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="fuzz-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)

CONFIG = schemathesis.Config.from_path(Path(__file__).resolve().parents[1] / "schemathesis.toml")
#: Off, and why, in schemathesis.toml.
EXCLUDED_CHECKS = {"positive_data_acceptance"}

#: The committed document, which tests/openapi proves equal to the one the service serves.
schema = schemathesis.openapi.from_path(COMMITTED, config=CONFIG)


@schema.auth(refresh_interval=None).skip_for(path_regex="^/oauth/")
class BearerToken:
    """The network's token on every API call (not on the cases that test its absence)."""

    def get(self, case, context):
        return TOKEN

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.auth(refresh_interval=None).apply_to(path_regex="^/oauth/")
class ClientSecretBasic:
    """The network's client on the token endpoints (RFC 6749 2.3.1)."""

    def get(self, case, context):
        return base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Basic {data}"}


@pytest.fixture
def network(app, make):
    return build_network(app, make)


@schema.parametrize()
# One network per operation on purpose: each case's savepoint gives the next one it unchanged.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_documented(case, app, network):
    network.pin(case)
    with rolled_back():
        case.call_and_validate(app=app)


def test_workflows_answer_as_documented(app, network):
    """Scenarios: what one call creates (by links schemathesis infers from the schemas and
    Location) feeds the next; each scenario is rolled back."""

    class Workflow(schema.as_state_machine()):
        def setup(self):
            self.scenario = savepoint()

        def teardown(self):
            self.scenario.rollback()

        def step(self, input):
            if input.transition is None or not input.is_applied:  # no linked value to use
                network.pin(input.case)
            return super().step(input)

        def get_call_kwargs(self, case):
            return {"app": app}

    Workflow.run(settings=schema.config.get_hypothesis_settings(phase="stateful"))


@pytest.mark.no_db
def test_every_check_is_on_but_the_excluded_one():
    load_all_checks()
    for phase in (None, "stateful"):
        checks = schema.config.checks_config_for(operation=None, phase=phase)
        enabled = {name for name in CHECKS.get_all_names()
                   if checks.get_by_name(name=name).enabled}
        assert enabled == set(CHECKS.get_all_names()) - EXCLUDED_CHECKS
    assert schema.config.seed is not None
    assert schema.config.generation.database == "none"


def test_the_paths_random_data_rarely_reaches_answer_as_documented(app, make, network,
                                                                   monkeypatch):
    """Hand-made cases, held to the same checks: the requests random data seldom gets right
    (a consent, a send under consent, the whole lifecycle, a replay, a 429)."""

    def call(method, path, path_parameters=None, *, headers=None, token=TOKEN, **parts):
        auth = {"Authorization": f"Bearer {token}"}
        case = schema[path][method].Case(path_parameters=path_parameters or {},
                                         headers={**auth, **(headers or {})}, **parts)
        return case.call_and_validate(app=app, headers=auth)

    now = datetime.now(UTC)
    consent = {"grantor": {"caregiver_id": network.caregiver_id, "legal_authority": "parent"},
               "organization_ids": [network.organization_id, network.partner_id],
               "purposes": ["referral", "care_coordination"],
               "categories": ["identity", "contact", "referral_reason"],
               "expires_at": (now + timedelta(days=90)).isoformat(), "method": "written",
               "signed_at": now.isoformat(), "explained_in_language": "es",
               "interpreter_used": True, "revocation_rights_explained": True}
    family = {"family_id": network.family_id}
    for _ in range(2):  # the second is the first answer again
        recorded = call("POST", "/api/v1/families/{family_id}/consents", family, body=consent,
                        headers={"Idempotency-Key": "fuzz-consent-1"})
        assert recorded.status_code == 201, recorded.text
    assert recorded.headers["idempotent-replayed"] == ["true"]

    sent = call("POST", "/api/v1/referrals", body={
        "family_id": network.family_id, "to_organization_id": network.partner_id,
        "reasons": ["feeding_concerns"], "urgency": "urgent",
        "shared_categories": ["identity", "contact", "referral_reason"]})
    assert sent.status_code == 201, sent.text

    referral = {"referral_id": network.referral_id}
    first = etag = network.etags["/api/v1/referrals/{referral_id}/transitions"]
    for move, status in (({"status": "received"}, 200), ({"status": "accepted"}, 200),
                         ({"status": "received"}, 409),
                         ({"status": "in_progress", "business_status": "scheduled"}, 200),
                         ({"status": "completed", "outcome": "goals_met"}, 200)):
        moved = call("POST", "/api/v1/referrals/{referral_id}/transitions", referral,
                     body=move, headers={"If-Match": etag})
        assert moved.status_code == status, moved.text
        etag = moved.headers.get("etag", [etag])[0]
    for tag, status in ((first, 412), (None, 428)):
        refused = call("POST", "/api/v1/referrals/{referral_id}/transitions", referral,
                       body={"status": "cancelled", "reason": "family_declined"},
                       headers={"If-Match": tag} if tag else None)
        assert refused.status_code == status, refused.text
    assert call("POST", "/api/v1/referrals/{referral_id}/notes", referral,
                body={"body": "Family moved to a new address."}).status_code == 201

    changed = call("PATCH", "/api/v1/families/{family_id}", family,
                   body={"preferred_language": "en"},
                   headers={"If-Match": network.etags["/api/v1/families/{family_id}"]})
    assert changed.status_code == 200, changed.text
    revoked = call("POST", "/api/v1/consents/{consent_id}/revoke",
                   {"consent_id": network.consent_id}, body={"reason": "Family asked."})
    assert revoked.status_code == 200, revoked.text

    # A client of its own: its budget is counted nowhere else, whatever the limiter's storage.
    token = make.token()
    monkeypatch.setitem(app.config, "RATE_LIMIT_API", "1 per hour")
    answers = [call("GET", "/api/v1/me", token=token).status_code for _ in range(2)]
    assert answers == [200, 429]
