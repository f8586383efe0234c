"""Rows an auditor's answers are built from, written beside the hash chain, that verification
does not see.

API.md "Audit": `seq` starts at 1 and has no gaps; verify names the first broken seq and why.
README "The chain" / "Verification": the chain and the signed checkpoints are what reveal
tampering, since whoever owns the database can write to it. An auditor expects every row that
can change what the trail's answers say (an event, or the index the family filters and the
accounting of disclosures read) to be covered by verification.
"""

import json
import uuid

import pytest
import sqlalchemy as sa

import audit
from audit.chain import event_hash
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditListedFamily
from core import time as clock
from core.db import db
from tests.audit.conftest import unlock
from tests.conftest import bearer


@pytest.fixture
def clinic_family(make):
    clinic = make.organization(name="Clinic", type="pediatric_primary_care")
    provider = make.organization(name="Provider")
    return clinic, provider, make.family(clinic), make.family(clinic, given_name="Bea")


def _verify_api(client, auditor):
    answer = client.get("/api/v1/audit/verify", headers=bearer(auditor))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.json


@pytest.mark.parametrize("seq", [0, -1])
def test_an_event_inserted_below_seq_1_is_reported_by_verify(app, client, auditor,
                                                             clinic_family, seq):
    """A forged consented read of a family, inserted at seq 0 (or -1), would show in the
    family's accounting of disclosures and in the events API, outside the chain verify
    walks. The database refuses it (seq starts at 1); with that guard removed, both
    verifications name the row."""
    clinic, provider, family, _ = clinic_family
    with app.app_context():
        values = {
            "id": uuid.uuid4(), "recorded_at": clock.now(), "action": "read",
            "outcome": "permit", "reason": "consent", "organization_id": provider.id,
            "client_id": None, "token_id": None, "purpose": "referral",
            "resource_type": "family", "resource_id": str(family.id), "family_id": family.id,
            "family_ids": [], "categories": ["identity"], "consent_ids": [],
            "request_id": None, "request_method": None, "request_path": None,
            "request_ip": None, "seq": seq, "prev_hash": GENESIS_HASH,
        }
        values["hash"] = event_hash(values)
        with pytest.raises(sa.exc.IntegrityError), db.session.begin_nested():
            db.session.execute(sa.insert(AuditEvent).values(**values))
        _drop_seq_guard()
        db.session.execute(sa.insert(AuditEvent).values(**values))
        db.session.commit()

    # The forged row is part of what the auditor and the custodian are told.
    listed = client.get(f"/api/v1/audit/events?family_id={family.id}",
                        headers=bearer(auditor)).json["items"]
    assert seq in [e["seq"] for e in listed]

    verdict = _verify_api(client, auditor)
    assert verdict["valid"] is False, verdict
    assert verdict["first_bad_seq"] == seq

    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["first_bad_seq"] == seq


def _drop_seq_guard() -> None:
    """Remove the check that seq starts at 1 (rolled back with the test's transaction)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("ALTER TABLE audit_events "
                                   "DROP CONSTRAINT ck_audit_events_seq_from_1"))
    else:
        db.session.execute(sa.text("DROP TRIGGER audit_events_seq_from_1"))


def test_a_listed_family_planted_beside_an_event_is_reported_by_verify(
        app, client, make, auditor, clinic_family):
    """`audit_listed_families` accepts INSERTs (its triggers refuse only UPDATE/DELETE): one
    row naming family A beside a consented page that listed only family B puts that page in
    A's accounting of disclosures, and in `?family_id=A` although the event names neither
    `family_id` A nor A in `family_ids`. Verification reports nothing: the index the family
    filters read is not checked against the hashed `family_ids`."""
    clinic, provider, family, neighbour = clinic_family
    with app.app_context():
        audit.record(action="search", outcome="permit", reason="consent",
                     resource_type="referral", organization_id=provider.id,
                     family_ids=[neighbour.id], purpose="referral", categories=["identity"])
        db.session.commit()
        seq = db.session.scalar(sa.select(AuditChainHead.seq))
        db.session.execute(sa.insert(AuditListedFamily).values(family_id=family.id, seq=seq))
        db.session.commit()

    own = make.token(clinic, ["families:read"])
    accounting = client.get(f"/api/v1/families/{family.id}/disclosures",
                            headers=bearer(own)).json["items"]
    filtered = client.get(f"/api/v1/audit/events?family_id={family.id}",
                          headers=bearer(auditor)).json["items"]
    planted_shown = seq in [i["seq"] for i in accounting] or any(
        e["seq"] == seq and e["family_id"] != str(family.id)
        and str(family.id) not in e["family_ids"] for e in filtered)

    verdict = _verify_api(client, auditor)
    assert not (planted_shown and verdict["valid"]), (
        "a planted listed-family row changes the accounting of disclosures and verify "
        f"still answers {verdict}")
    assert verdict["valid"] is False
    assert verdict["first_bad_seq"] == seq


def test_a_listed_family_removed_from_the_index_is_reported_by_verify(
        app, client, make, auditor, clinic_family):
    """The other way: deleting the index row (what the owner can do, as with the events
    themselves) takes a real disclosure out of the family's accounting; the event still
    lists the family in its hashed `family_ids`, and verify calls the log valid."""
    clinic, provider, family, neighbour = clinic_family
    with app.app_context():
        audit.record(action="search", outcome="permit", reason="consent",
                     resource_type="referral", organization_id=provider.id,
                     family_ids=[family.id, neighbour.id], purpose="referral",
                     categories=["identity"])
        db.session.commit()
        seq = db.session.scalar(sa.select(AuditChainHead.seq))
    own = make.token(clinic, ["families:read"])
    before = client.get(f"/api/v1/families/{family.id}/disclosures",
                        headers=bearer(own)).json["items"]
    assert [i["seq"] for i in before] == [seq]
    with app.app_context():
        unlock("audit_listed_families")
        db.session.execute(sa.delete(AuditListedFamily).where(
            AuditListedFamily.seq == seq, AuditListedFamily.family_id == family.id))
        db.session.commit()
    after = client.get(f"/api/v1/families/{family.id}/disclosures",
                       headers=bearer(own)).json["items"]
    assert after == []  # the disclosure is gone from the accounting...

    verdict = _verify_api(client, auditor)  # ...and verification should say so
    assert verdict["valid"] is False, verdict
    assert verdict["first_bad_seq"] == seq
