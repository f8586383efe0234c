"""The permission matrix's vocabulary: the network it runs in, the situations an actor can be
in, and how each situation presents itself to the service.

One world per case: a pediatric clinic (the family's custodian, who records the consent and
sends the referral), an infant mental health provider (named in the consent, the referral's
receiver) and a stranger agency (accepting referrals, linked to nothing). The consent between
the clinic and the provider is in one of these states when the request is made:

- `active`: it covers identity, contact, referral_reason, service_status and
  coordination_notes for referral and care_coordination;
- `expired`: the same consent, its end two days past (the clock moved on after the send);
- `revoked`: the same consent, revoked by the clinic through the API (after the send);
- `partial`: the same consent revoked, and a second one in force covering `identity` only;
- `draft`: as `active`, but the referral was kept as a draft and never sent.

A sent referral was acknowledged by the provider (`received`) with a note, under the active
consent, before the consent changed state.
"""

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from audit.checkpoints import checkpoint_now
from audit.models import AuditEvent
from audit.schemas import CheckpointSchema
from auth.scopes import SCOPES
from auth.service import revoke_client
from core import time as clock
from core.concurrency import etag_for
from core.db import db
from referrals.models import Referral
from tests.conftest import bearer

STATES = ("active", "expired", "revoked", "partial")
FULL = ("identity", "contact", "referral_reason", "service_status", "coordination_notes")
ALL_SCOPES = tuple(SCOPES)


# -- expectations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Refused:
    """An expected problem+json answer."""

    status: int
    slug: str

    def __str__(self):
        return f"{self.status} {self.slug}"


NF = Refused(404, "not-found")
UNAUTHORIZED = Refused(401, "unauthorized")
NO_SCOPE = Refused(403, "insufficient-scope")
FORBIDDEN = Refused(403, "forbidden")
CONSENT_REQUIRED = Refused(403, "consent-required")

Expected = int | Refused


# -- situations -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Situation:
    """Who calls, with what credentials, in which state of the family's consent."""

    name: str
    #: `clinic`, `provider` or `stranger`: the organization whose token is presented.
    actor: str = "clinic"
    state: str = "active"
    #: How the token is presented: `header`, `none`, `malformed`, `expired`, `revoked`,
    #: `revoked-client`, `query`, `other-scopes`, `auditor` (audit:read only).
    credentials: str = "header"


#: The same for every protected route: the clinic, which would otherwise succeed, presents
#: a token that must not let it in.
TOKEN_SITUATIONS = {
    "no token": (Situation("no token", credentials="none"), UNAUTHORIZED),
    "malformed token": (Situation("malformed token", credentials="malformed"), UNAUTHORIZED),
    "expired token": (Situation("expired token", credentials="expired"), UNAUTHORIZED),
    "revoked token": (Situation("revoked token", credentials="revoked"), UNAUTHORIZED),
    "token of a revoked client": (Situation("token of a revoked client",
                                            credentials="revoked-client"), UNAUTHORIZED),
    "token in the query string": (Situation("token in the query string", credentials="query"),
                                  UNAUTHORIZED),
    "token without the scope": (Situation("token without the scope",
                                          credentials="other-scopes"), NO_SCOPE),
}

STRANGER = Situation("stranger", actor="stranger")
AUDITOR = Situation("stranger auditor", actor="stranger", credentials="auditor")
#: Public routes: a valid request as the contract describes it, no bearer token.
PUBLIC = Situation("public", credentials="none")
#: OAuth endpoints without the client's own credentials.
NO_CLIENT_AUTH = Situation("no client credentials", credentials="none")


def party(actor: str, state: str) -> Situation:
    """The clinic (`custodian`) or the provider in one state of the consent."""
    role = {"clinic": "custodian", "provider": "provider"}[actor]
    return Situation(f"{role}, consent {state}" if state != "draft"
                     else f"{role}, referral a draft", actor=actor, state=state)


# -- requests -------------------------------------------------------------------------------

@dataclass
class Req:
    """A request to make: path, JSON body or form, query and headers."""

    path: str
    json: Any = None
    form: dict | None = None
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


def send(client, method: str, req: Req, headers: dict, query: dict):
    """Make the request with the situation's credentials (`headers`, `query`) added."""
    kwargs = {"headers": {**req.headers, **headers}, "query_string": {**req.query, **query}}
    if req.json is not None:
        kwargs["json"] = req.json
    if req.form is not None:
        kwargs["data"] = req.form
    return client.open(req.path, method=method, **kwargs)


# -- the world ------------------------------------------------------------------------------

class World:
    """The network of one case, ids by name (`family_id`, `consent_id`, `referral_id`...)."""

    def __init__(self, app, client, make, *, state: str = "active", needs=frozenset()):
        self.app, self.make = app, make
        start = datetime.now(UTC).replace(microsecond=0)
        clock.freeze(start)
        self.clinic = make.organization(name="Washtenaw Pediatrics",
                                        type="pediatric_primary_care")
        self.provider = make.organization(name="Riverbend IMH", accepting_referrals=True)
        self.stranger = make.organization(name="Elsewhere Family Services",
                                          type="community_other", accepting_referrals=True)
        self.clinic_id, self.provider_id, self.stranger_id = (
            self.clinic.id, self.provider.id, self.stranger.id)
        family = make.family(self.clinic)
        self.family_id = family.id
        self.grantor_id = next(c.id for c in family.caregivers if c.has_legal_authority)
        consent = make.consent(family, [self.clinic, self.provider], categories=FULL,
                               expires_in_days=2 if state == "expired" else 180)
        self.consent_id = consent.id
        setup = None
        if "referral" in needs or state in ("revoked", "partial"):
            setup = bearer(make.token(self.clinic))
        if "referral" in needs:
            answer = client.post("/api/v1/referrals", headers=setup, json={
                "family_id": str(self.family_id), "to_organization_id": str(self.provider_id),
                "reasons": ["caregiver_depression"], "reason_detail": "Low mood since birth.",
                "urgency": "routine", "shared_categories": ["identity", "contact",
                                                            "referral_reason"],
                "status": "draft" if state == "draft" else "requested"})
            assert answer.status_code == 201, answer.get_data(as_text=True)
            self.referral_id = uuid.UUID(answer.json["id"])
            if state != "draft":
                # The provider's acknowledgement, with a note: feedback and a note the clinic
                # reads only under a consent for care_coordination.
                answer = client.post(
                    f"/api/v1/referrals/{self.referral_id}/transitions",
                    json={"status": "received", "note": "Called the mother; visit booked."},
                    headers={**bearer(make.token(self.provider, ["referrals:write"])),
                             "If-Match": answer.headers["ETag"]})
                assert answer.status_code == 200, answer.get_data(as_text=True)
        if state == "partial":
            self.consent_id = make.consent(family, [self.clinic, self.provider],
                                           categories=("identity",)).id
        if state in ("revoked", "partial"):
            answer = client.post(f"/api/v1/consents/{consent.id}/revoke", headers=setup,
                                 json={"reason": "The family asked to stop sharing."})
            assert answer.status_code == 200, answer.get_data(as_text=True)
        if state == "expired":
            clock.freeze(start + timedelta(days=3))
        with app.app_context():
            if "referral" in needs:
                version = db.session.get(Referral, self.referral_id).version
                self.referral_etag = etag_for(version)
            if "checkpoint" in needs:
                self.checkpoint = CheckpointSchema().dump(checkpoint_now(db.session))
                db.session.commit()
            self.event_seq = db.session.scalar(sa.select(sa.func.max(AuditEvent.seq)))
        self.now = clock.now()

    def organization(self, actor: str):
        return {"clinic": self.clinic, "provider": self.provider,
                "stranger": self.stranger}[actor]

    def with_missing(self, names) -> "World":
        """A copy naming fresh, nonexistent ids in place of `names`."""
        other = copy.copy(self)
        for name in names:
            setattr(other, name, uuid.uuid4())
        return other

    def credentials(self, situation: Situation, required) -> tuple[dict, dict]:
        """(headers, query) presenting the situation's token. A valid token carries the first
        of the route's `required` scopes (any one suffices), and nothing else: the route must
        need no other."""
        organization = self.organization(situation.actor)
        scopes = list(required[:1]) or ["directory:read"]  # () : any token will do
        kind = situation.credentials
        if kind == "none":
            return {}, {}
        if kind == "malformed":
            return bearer("not-a-token-the-service-issued"), {}
        if kind == "other-scopes":
            scopes = [s for s in ALL_SCOPES if s not in (required or scopes)]
        if kind == "auditor":
            scopes = ["audit:read"]
        if kind == "revoked-client":
            oauth_client, _ = self.make.client(organization, scopes)
            token = self.make.token(scopes=scopes, oauth_client=oauth_client)
            with self.app.app_context():
                revoke_client(oauth_client.id)
                db.session.commit()
            return bearer(token), {}
        token = self.make.token(organization, scopes, lifetime=-60 if kind == "expired" else 3600,
                                revoked=kind == "revoked")
        if kind == "query":
            return {}, {"access_token": token}
        return bearer(token), {}
