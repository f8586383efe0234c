"""The contract fuzzer's network, credentials and savepoints (tests/test_fuzz.py)."""

import contextlib
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import timedelta

from schemathesis.core.parameters import ParameterLocation

from core.db import db
from tests.conftest import bearer

#: The fuzzing client's credentials. Fixed, because schemathesis builds a part of its cases
#: (the coverage phase, the schema's examples) while pytest collects, before any fixture runs,
#: and its auth providers must know them then. Each test's transaction is rolled back, so the
#: rows that carry them never outlive the test.
CLIENT_ID = uuid.UUID("f0220000-0000-4000-8000-000000000001")
CLIENT_SECRET = "fuzz-client-secret-" + "s" * 32  # noqa: S105 (a test's own secret)
TOKEN = "fuzz-access-token-" + "t" * 32  # noqa: S105

#: What each family lets the two organizations share, for referral and feedback.
CATEGORIES = ("identity", "contact", "referral_reason", "service_status", "coordination_notes")


@dataclass(frozen=True)
class Network:
    """The fuzzing organization and the objects it may act on."""

    organization_id: str
    partner_id: str
    family_id: str
    caregiver_id: str
    consent_id: str
    referral_id: str
    seq: int
    #: The current ETag of the object each If-Match operation changes, by path template.
    etags: dict = field(default_factory=dict)

    def pin(self, case) -> None:
        """Point a case at objects that exist, where it was generated valid (an invalid part
        stays exactly as invalid as schemathesis made it).

        Path ids always name the network's objects (a generated id only finds 404, which the
        invalid paths reach anyway). Ids in a body, and If-Match, are replaced for about half
        the cases, chosen by the generated value: the unknown family and the stale tag stay
        covered, and the send under consent and the lifecycle's moves are reached."""
        meta = case.meta
        valid = {location: not (meta and meta.is_negative_at(location))
                 for location in (ParameterLocation.PATH, ParameterLocation.HEADER,
                                  ParameterLocation.BODY)}
        if case.path_parameters and valid[ParameterLocation.PATH]:
            ids = {"organization_id": self.organization_id, "family_id": self.family_id,
                   "consent_id": self.consent_id, "referral_id": self.referral_id,
                   "seq": self.seq}
            case.path_parameters.update(
                {name: ids[name] for name in case.path_parameters if name in ids})
        if valid[ParameterLocation.HEADER] and _chosen((case.headers or {}).get("If-Match")):
            case.headers["If-Match"] = self.etags[case.operation.path]
        if isinstance(case.body, dict) and valid[ParameterLocation.BODY]:
            self._pin_body(case.body)

    def _pin_body(self, body: dict) -> None:
        ids = {"family_id": self.family_id, "to_organization_id": self.partner_id,
               "caregiver_id": self.caregiver_id}
        for name, value in body.items():
            if name in ids and _chosen(value):
                body[name] = ids[name]
            elif name == "organization_ids" and isinstance(value, list) and _chosen(value):
                body[name] = [self.organization_id, self.partner_id]
            elif isinstance(value, dict):
                self._pin_body(value)


def _chosen(value) -> bool:
    """About half of the generated strings and lists, the same ones on every run."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = "".join(value)
    return isinstance(value, str) and zlib.crc32(value.encode("utf-8", "replace")) % 2 == 0


def build_network(app, make) -> Network:
    """The fuzzing organization holds a family under a consent with a partner, and has
    received a referral from that partner (so most moves of the lifecycle are its own);
    the audit trail has a signed checkpoint."""
    from audit.checkpoints import checkpoint_now

    fuzzer = make.organization(name="Fuzz Family Services", type="home_visiting",
                               accepting_referrals=True)
    partner = make.organization(name="Fuzz Pediatrics", type="pediatric_primary_care",
                                accepting_referrals=True)
    _issue_credentials(app, fuzzer)
    family = make.family(fuzzer)
    consent = make.consent(family, [fuzzer, partner], categories=CATEGORIES)

    referred = make.family(partner, given_name="Kofi", family_name="Mensah")
    make.consent(referred, [partner, fuzzer], categories=CATEGORIES)
    client = app.test_client()
    sent = client.post(
        "/api/v1/referrals", headers=bearer(make.token(partner)),
        json={"family_id": str(referred.id), "to_organization_id": str(fuzzer.id),
              "reasons": ["feeding_concerns"], "reason_detail": "Long nights.",
              "urgency": "routine", "shared_categories": ["identity", "contact",
                                                          "referral_reason"]})
    assert sent.status_code == 201, sent.get_data(as_text=True)
    referral_id = sent.json["id"]

    etags = {}
    for template, path in (
            ("/api/v1/referrals/{referral_id}/transitions", f"/api/v1/referrals/{referral_id}"),
            ("/api/v1/families/{family_id}", f"/api/v1/families/{family.id}"),
            ("/api/v1/organizations/{organization_id}", f"/api/v1/organizations/{fuzzer.id}")):
        read = client.get(path, headers=bearer(TOKEN))
        assert read.status_code == 200, read.get_data(as_text=True)
        etags[template] = read.headers["ETag"]

    with app.app_context():
        checkpoint = checkpoint_now(db.session)
        seq = checkpoint.seq
        db.session.commit()
    mother = next(c for c in family.caregivers if c.has_legal_authority)
    return Network(organization_id=str(fuzzer.id), partner_id=str(partner.id),
                   family_id=str(family.id), caregiver_id=str(mother.id),
                   consent_id=str(consent.id), referral_id=referral_id, seq=seq, etags=etags)


def _issue_credentials(app, organization) -> None:
    """The fixed client, with every scope, and its token, stored as the service stores them."""
    from auth.models import AccessToken, OAuthClient
    from auth.scopes import SCOPES
    from core import time as clock
    from core.ids import secret_digest

    with app.app_context():
        at = clock.now()
        db.session.add(OAuthClient(
            id=CLIENT_ID, organization_id=organization.id, name="contract fuzzer",
            scope=" ".join(SCOPES), secret_hash=secret_digest(CLIENT_SECRET), created_at=at))
        db.session.flush()
        db.session.add(AccessToken(
            token_hash=secret_digest(TOKEN), client_id=CLIENT_ID, scope=" ".join(SCOPES),
            issued_at=at, expires_at=at + timedelta(days=1)))
        db.session.commit()


def savepoint():
    """A savepoint on the connection of the test's transaction (conftest `_isolated`), which
    the test's session is bound to: it wraps the savepoints of the requests made after it."""
    return db.session.session_factory.kw["bind"].begin_nested()


@contextlib.contextmanager
def rolled_back():
    """Undo whatever the requests inside did, so every case meets the same network (and
    Hypothesis, replaying a case, meets the same answer)."""
    undo = savepoint()
    try:
        yield
    finally:
        undo.rollback()
