"""`GET /api/v1/audit/checkpoints/latest` after checkpoints were made.

API.md "Audit": "`latest` is 404 until the first is made". README "Checkpoints": "`latest`
passes over a stored one that is not the service's". The append-only triggers on
audit_checkpoints refuse UPDATE and DELETE, not INSERT (tests/audit/test_verification.py
`_plant` says so): planting rows needs no trigger bypass.
"""

import base64
import json

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit
from audit.checkpoints import key_id_of, signed_message
from audit.models import AuditChainHead, AuditCheckpoint
from core import time as clock
from core.db import db
from tests.conftest import bearer

#: More rows than any fixed look-back would read.
PLANTED = 150


@pytest.mark.parametrize("under", ["another key", "the service's key"])
def test_planted_rows_above_the_head_do_not_hide_the_services_checkpoint(app, client,
                                                                         auditor, under):
    """Rows signed by another key, or naming the service's key under a signature it never
    made: `latest` passes over every one of them."""
    with app.app_context():
        for _ in range(3):
            audit.record(action="read", outcome="permit", reason="probe",
                         resource_type="family")
            db.session.commit()
    kept = json.loads(app.test_cli_runner().invoke(args=["audit", "checkpoint"]).stdout)

    forger = Ed25519PrivateKey.generate()
    public = forger.public_key().public_bytes_raw()
    if under == "the service's key":
        public = base64.b64decode(kept["public_key"])
    key_id = key_id_of(public)
    at = clock.now()
    with app.app_context():
        head = db.session.scalar(sa.select(AuditChainHead.seq))
        rows = []
        for n in range(PLANTED):
            seq = head + 1_000_000 + n
            message = signed_message(seq=seq, hash="f" * 64, recorded_at=clock.rfc3339(at),
                                     key_id=key_id)
            rows.append({"seq": seq, "hash": "f" * 64, "recorded_at": at, "key_id": key_id,
                         "public_key": base64.b64encode(public).decode(),
                         "signature": base64.b64encode(forger.sign(message)).decode()})
        db.session.execute(sa.insert(AuditCheckpoint), rows)
        db.session.commit()

    latest = client.get("/api/v1/audit/checkpoints/latest", headers=bearer(auditor))
    # A checkpoint was made: 404 ("No checkpoint has been made yet") tells the auditor a
    # falsehood, and hides the one they should compare against.
    assert latest.status_code == 200, latest.get_data(as_text=True)
    assert latest.json == kept
