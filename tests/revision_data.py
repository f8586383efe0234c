"""Realistic data written as an older revision of the service would have written it.

`populate(connection, revision)` inserts, with Core statements naming only the columns the
database has at that revision (read from the database itself, never from the models at head),
organizations, OAuth clients and tokens, families with caregivers, consents (one revoked) with
their parties, idempotency keys, referrals in every status with notes and timeline events
(Part C clocks, a referral on a pausing hold), audit events chained as that revision chained
them (in Python before 0004 and on SQLite; by the deferred trigger from 0004 to 0007; into
`audit_pending`, partly sealed, from 0008), and signed checkpoints.

It returns a `Seeded` naming what it wrote, so a test can check what an upgrade kept.
"""

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.chain import event_hash
from audit.checkpoints import key_id_of, signed_message
from core.db import db
from core.ids import secret_digest
from core.time import rfc3339

#: The checkpoint signing key of the service that wrote the data (base64 of the seed).
SIGNING_SEED = bytes(range(32))
SIGNING_KEY_B64 = base64.b64encode(SIGNING_SEED).decode()
GENESIS = "0" * 64
ALL_SCOPES = ("directory:read directory:write families:read families:write consent:read "
              "consent:write referrals:read referrals:write audit:read")
#: When the older service ran: long enough ago that every consent recorded then is past,
#: except the ones made to last.
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _rev(revision: str) -> int:
    return int(revision)


@dataclass
class Seeded:
    revision: str
    organizations: dict = field(default_factory=dict)   # name -> id
    tokens: dict = field(default_factory=dict)           # organization name -> raw token
    clients: dict = field(default_factory=dict)          # organization name -> client id
    families: list = field(default_factory=list)
    consents: list = field(default_factory=list)
    referrals: dict = field(default_factory=dict)        # label -> id
    events: int = 0          # events written (chained or pending)
    pending: int = 0         # of which left in audit_pending, unsealed
    checkpoints: list = field(default_factory=list)      # as an auditor kept them
    listed_family_events: int = 0
    counts: dict = field(default_factory=dict)           # table -> rows, after populate


def _table(connection, name: str) -> sa.Table:
    """The head model's table cut down to the columns the database has now: types from the
    models (UUID, JSON and timestamp handling as the service writes them), no defaults."""
    model_table = db.metadata.tables[name]
    present = {c["name"] for c in sa.inspect(connection).get_columns(name)}
    return sa.Table(name, sa.MetaData(),
                    *[sa.Column(c.name, c.type, primary_key=c.primary_key)
                      for c in model_table.columns if c.name in present])


class _Writer:
    def __init__(self, connection, revision: str):
        self.c = connection
        self.rev = _rev(revision)
        self.pg = connection.dialect.name == "postgresql"
        self.tables = {}
        self.seeded = Seeded(revision)
        self.clock = T0
        self.key = Ed25519PrivateKey.from_private_bytes(SIGNING_SEED)

    def t(self, name):
        if name not in self.tables:
            self.tables[name] = _table(self.c, name)
        return self.tables[name]

    def insert(self, table_name, /, **values):
        table = self.t(table_name)
        unknown = set(values) - set(table.c.keys())
        for key in unknown:
            values.pop(key)
        self.c.execute(table.insert().values(**values))

    def tick(self, **delta):
        self.clock += timedelta(**(delta or {"seconds": 1}))
        return self.clock

    # -- audit -------------------------------------------------------------------------------
    def event(self, *, action, outcome="permit", reason="custodian", organization=None,
              client=None, token=None, purpose=None, resource_type, resource_id=None,
              family_id=None, categories=(), consent_ids=(), family_ids=(), path=None,
              method="GET", seal=True):
        at = self.tick(microseconds=123457)
        values = {
            "id": uuid.uuid4(), "recorded_at": at, "action": action, "outcome": outcome,
            "reason": reason, "organization_id": organization, "client_id": client,
            "token_id": token, "purpose": purpose, "resource_type": resource_type,
            "resource_id": None if resource_id is None else str(resource_id),
            "family_id": family_id, "categories": sorted(categories),
            "consent_ids": sorted(str(c) for c in consent_ids),
            "request_id": uuid.uuid4().hex, "request_method": method if path else None,
            "request_path": path, "request_ip": "203.0.113.7" if path else None,
        }
        if self.rev >= 6:
            values["family_ids"] = sorted(str(f) for f in family_ids)
            if family_ids:
                self.seeded.listed_family_events += 1
        self.seeded.events += 1
        if not self.pg or self.rev < 4:
            # Chained in Python at commit (SQLite always; PostgreSQL before 0004).
            head = self.c.execute(sa.text("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
                                  ).one()
            row = {**values, "seq": head.seq + 1, "prev_hash": head.hash}
            row["hash"] = event_hash(row)
            self.insert("audit_events", **row)
            self.c.execute(sa.text("UPDATE audit_chain_head SET seq = :s, hash = :h "
                                   "WHERE id = 1"), {"s": row["seq"], "h": row["hash"]})
            return
        self.insert("audit_pending", **values)
        if self.rev >= 8:
            if seal:
                self.c.execute(sa.text("SELECT audit_seal_pending(2000, true)"))
            else:
                self.seeded.pending += 1
        # 0004-0007: the deferred trigger chains it when the transaction commits.

    def checkpoint(self):
        """A checkpoint of the head as the service then made it; kept as an auditor would."""
        if self.pg and self.rev >= 4:
            self.c.commit()  # the trigger (0004-0007) chains at commit; 0008+ seals inline
        head = self.c.execute(sa.text("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
                              ).one()
        if self.seeded.checkpoints and self.seeded.checkpoints[-1]["seq"] == head.seq:
            return
        at = self.tick()
        public = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)
        key_id = key_id_of(public)
        signature = self.key.sign(signed_message(seq=head.seq, hash=head.hash,
                                                 recorded_at=rfc3339(at), key_id=key_id))
        kept = {"seq": head.seq, "hash": head.hash, "recorded_at": rfc3339(at),
                "key_id": key_id, "public_key": base64.b64encode(public).decode(),
                "signature": base64.b64encode(signature).decode()}
        self.insert("audit_checkpoints", seq=head.seq, hash=head.hash, recorded_at=at,
                    key_id=key_id, public_key=kept["public_key"], signature=kept["signature"])
        head_table = self.t("audit_chain_head")
        self.c.execute(head_table.update().where(head_table.c.id == 1).values(checkpointed_at=at))
        self.seeded.checkpoints.append(kept)


ORGS = [
    # name, type: names that sort differently under an `en` collation than by code point
    ("Riverbend Infant Mental Health", "imh_provider"),
    ("_Underscore Care", "community_other"),
    ("100 Acres Kids", "home_visiting"),
    ("Éclair Family Center", "imh_provider"),
    ("eagle Pediatrics", "pediatric_primary_care"),
    ("Washtenaw Child Welfare", "child_welfare"),
    ("State Audit Office", "community_other"),
]


def populate(connection, revision: str) -> Seeded:
    """Write the data; commits. `connection` is at `revision`."""
    w = _Writer(connection, revision)
    s = w.seeded
    rev = w.rev
    for name, kind in ORGS:
        org_id = uuid.uuid4()
        s.organizations[name] = org_id
        at = w.tick()
        w.insert("organizations", id=org_id, name=name, name_key=name.casefold(), type=kind,
                 counties=["Washtenaw"], languages=["en", "es-MX"],
                 accepting_referrals=kind == "imh_provider",
                 capacity_status="waitlist" if kind == "imh_provider" else None,
                 capacity_waitlist="1_3_months" if kind == "imh_provider" else None,
                 capacity_updated_at=at if kind == "imh_provider" else None,
                 created_at=at, updated_at=at, version=1)
        client_id = uuid.uuid4()
        raw = f"token-of-{name}-{uuid.uuid4().hex}"
        s.clients[name] = client_id
        s.tokens[name] = raw
        w.insert("oauth_clients", id=client_id, organization_id=org_id, name=f"client of {name}",
                 secret_hash=secret_digest("secret-" + name), scope=ALL_SCOPES, created_at=at,
                 revoked_at=None)
        # A live token (a year), an expired one, a revoked one.
        for lifetime, revoked, token in ((timedelta(days=3650), None, raw),
                                         (timedelta(hours=1), None, uuid.uuid4().hex),
                                         (timedelta(days=3650), at, uuid.uuid4().hex)):
            w.insert("oauth_tokens", id=uuid.uuid4(), token_hash=secret_digest(token),
                     client_id=client_id, scope=ALL_SCOPES, issued_at=at,
                     expires_at=at + lifetime, revoked_at=revoked)
    revoked_client = uuid.uuid4()
    w.insert("oauth_clients", id=revoked_client,
             organization_id=s.organizations["Washtenaw Child Welfare"], name="old system",
             secret_hash=secret_digest("x"), scope="families:read", created_at=w.tick(),
             revoked_at=w.tick())

    if rev < 2:
        return _finish(w)

    org = s.organizations
    clinic, provider = org["eagle Pediatrics"], org["Riverbend Infant Mental Health"]
    clinic_client, provider_client = str(s.clients["eagle Pediatrics"]), \
        str(s.clients["Riverbend Infant Mental Health"])
    for name in ORGS:
        w.event(action="create", reason="operator", resource_type="organization",
                resource_id=org[name[0]])
    w.event(action="update", organization=provider, client=provider_client,
            resource_type="organization", resource_id=provider,
            path="/api/v1/organizations/" + str(provider), method="PATCH")
    # An awkward path: non-ASCII, quotes, a backslash, a control character.
    w.event(action="read", outcome="deny", reason="not_found", organization=clinic,
            client=clinic_client, resource_type="organization",
            resource_id="Éclair \"x\" \\ \u2028 \t", path="/api/v1/organizations/Éclair\t\"q\"")
    w.event(action="create", outcome="deny", reason="invalid_client",
            client="not-a-client", resource_type="oauth_token", path="/oauth/token",
            method="POST")
    w.checkpoint()

    if rev >= 3:
        _families_and_consents(w)
    if rev >= 5:
        for n in range(3):
            w.insert("idempotency_keys", id=str(uuid.uuid4()), client_id=clinic_client,
                     key=f"key-{n}", request_hash="a" * 64, status=201,
                     body=json.dumps({"id": str(uuid.uuid4())}),
                     headers={"Location": "/api/v1/families/x"}, created_at=w.tick())
    if rev >= 7:
        _referrals(w)
    w.checkpoint()
    if rev >= 6 and s.families:
        # A page of a list names every family it disclosed.
        w.event(action="search", organization=clinic, client=clinic_client,
                reason="custodian", resource_type="family", categories=("identity",),
                family_ids=[f["id"] for f in s.families], path="/api/v1/families")
    if rev >= 8:
        # Committed, not sealed yet: the upgrade finds them waiting.
        for _ in range(3):
            w.event(action="read", organization=clinic, client=clinic_client,
                    resource_type="family", family_id=s.families[0]["id"],
                    categories=("identity", "contact"), path="/api/v1/families/x", seal=False)
    return _finish(w)


def _finish(w: _Writer) -> Seeded:
    w.c.commit()
    inspector = sa.inspect(w.c)
    for name in inspector.get_table_names():
        if name != "alembic_version":
            w.seeded.counts[name] = w.c.scalar(sa.text(f"SELECT count(*) FROM {name}"))  # noqa: S608
    w.c.commit()
    return w.seeded


def _families_and_consents(w: _Writer) -> None:
    s = w.seeded
    org = s.organizations
    clinic = org["eagle Pediatrics"]
    provider = org["Riverbend Infant Mental Health"]
    welfare = org["Washtenaw Child Welfare"]
    clinic_client = str(s.clients["eagle Pediatrics"])
    provider_client = str(s.clients["Riverbend Infant Mental Health"])
    for n, (given, family) in enumerate((("Amara", "Okafor"), ("Zoë", "Ngata-Brown"),
                                         ("Li", "Wei"))):
        family_id = uuid.uuid4()
        at = w.tick()
        w.insert("families", id=family_id, custodian_organization_id=clinic,
                 child_given_name=given, child_family_name=family,
                 child_birth_date=date(2026, 3, 2 + n), child_county="Washtenaw",
                 preferred_language="es", interpreter_needed=n == 0,
                 cultural_considerations="in the family's own words" if n == 0 else None,
                 do_not_contact=n == 2, contact_methods=["phone", "text"],
                 contact_best_times="mornings", created_at=at, updated_at=at, version=1 + n)
        caregivers = []
        for position, (cg_given, relationship, authority) in enumerate(
                (("Ngozi", "mother", True), ("Ada", "grandparent", False))):
            cg = uuid.uuid4()
            caregivers.append(cg)
            w.insert("caregivers", id=cg, family_id=family_id, position=position,
                     given_name=cg_given, family_name=family, relationship=relationship,
                     has_legal_authority=authority,
                     phone="+17345550101" if authority else None,
                     email="ngozi@example.org" if authority else None)
        s.families.append({"id": family_id, "caregivers": caregivers})
        w.event(action="create", organization=clinic, client=clinic_client,
                resource_type="family", resource_id=family_id, family_id=family_id,
                categories=("identity", "contact"), path="/api/v1/families", method="POST")

        # One consent active for years, naming the clinic and the provider; on the first
        # family also one revoked, and one naming the welfare office that has expired.
        specs = [("active", timedelta(days=3000), None)]
        if n == 0:
            specs += [("revoked", timedelta(days=300), w.clock + timedelta(hours=2)),
                      ("expired", timedelta(days=1), None)]
        for label, length, revoked_at in specs:
            consent = uuid.uuid4()
            effective = w.tick()
            parties = [clinic, provider] if label != "expired" else [clinic, welfare]
            w.insert("consents", id=consent, family_id=family_id,
                     grantor_caregiver_id=caregivers[0], grantor_legal_authority="parent",
                     purposes=["referral", "care_coordination", "treatment"],
                     categories=["identity", "contact", "referral_reason", "service_status",
                                 "coordination_notes", "screening"],
                     effective_at=effective, expires_at=effective + length,
                     method="electronic_signature", signed_at=effective,
                     explained_in_language="es", interpreter_used=True,
                     revocation_rights_explained=True, recorded_by_organization_id=clinic,
                     recorded_at=effective, revoked_at=None)
            for position, party in enumerate(parties):
                w.insert("consent_parties", consent_id=consent, organization_id=party,
                         family_id=family_id, position=position)
            s.consents.append({"id": consent, "family_id": family_id, "label": label})
            w.event(action="create", organization=clinic, client=clinic_client,
                    resource_type="consent", resource_id=consent, family_id=family_id,
                    consent_ids=(consent,), path=f"/api/v1/families/{family_id}/consents",
                    method="POST")
            if revoked_at is not None:
                w.c.execute(w.t("consents").update()
                            .where(w.t("consents").c.id == consent)
                            .values(revoked_at=revoked_at, revocation_reason="asked",
                                    revocation_requested_by="caregiver",
                                    revocation_caregiver_id=caregivers[0],
                                    revoked_by_organization_id=clinic))
                w.event(action="revoke", organization=clinic, client=clinic_client,
                        resource_type="consent", resource_id=consent, family_id=family_id,
                        consent_ids=(consent,), path=f"/api/v1/consents/{consent}/revoke",
                        method="POST")
        active = [c["id"] for c in s.consents if c["family_id"] == family_id
                  and c["label"] == "active"]
        # A disclosure: the provider reads the family under consent.
        w.event(action="read", organization=provider, client=provider_client,
                reason="consent", purpose="care_coordination", resource_type="family",
                resource_id=family_id, family_id=family_id, categories=("identity", "contact"),
                consent_ids=active, path=f"/api/v1/families/{family_id}")
        w.event(action="decide", organization=provider, client=provider_client,
                reason="consent", purpose="referral", resource_type="consent_decision",
                family_id=family_id, categories=("identity",), consent_ids=active,
                path="/api/v1/consent-decisions", method="POST")


def _referrals(w: _Writer) -> None:
    """A referral in every status, written with its timeline as the service then wrote it."""
    s = w.seeded
    org = s.organizations
    clinic = org["eagle Pediatrics"]
    provider = org["Riverbend Infant Mental Health"]
    clinic_client = str(s.clients["eagle Pediatrics"])
    provider_client = str(s.clients["Riverbend Infant Mental Health"])
    family = s.families[0]["id"]
    consent = next(c["id"] for c in s.consents if c["family_id"] == family
                   and c["label"] == "active")
    # path: the statuses it went through after creation, with (reason, outcome, business).
    plans = {
        "draft": ["draft"],
        "requested": ["requested"],
        "received": ["requested", "received"],
        "accepted": ["requested", "received", "accepted"],
        "rejected": ["requested", ("rejected", "at_capacity", None, None)],
        "in_progress": ["requested", "received", "accepted",
                        ("in_progress", None, None, "scheduled")],
        # Paused (pausing reason) since a while: its clock is stopped.
        "on_hold_paused": ["requested", "received", "accepted",
                           ("on_hold", "family_circumstances", None, None)],
        # Paused once for 5 minutes and resumed (+1 day under the old rule), now in progress.
        "resumed_once": ["requested", "received", "accepted",
                         ("on_hold", "awaiting_consent", None, None),
                         ("in_progress", None, None, "engaged")],
        "on_hold_waitlist": ["requested", "received", "accepted",
                             ("on_hold", "waitlist", None, None)],
        "completed": ["requested", "received", "accepted",
                      ("in_progress", None, None, "engaged"),
                      ("completed", None, "goals_met", None)],
        "cancelled": ["requested", ("cancelled", "family_moved", None, None)],
    }
    for label, steps in plans.items():
        referral = uuid.uuid4()
        created = w.tick(minutes=1)
        first = steps[0] if isinstance(steps[0], str) else steps[0][0]
        row = dict(id=referral, family_id=family, from_organization_id=clinic,
                   to_organization_id=provider, status="draft", business_status=None,
                   status_reason=None, status_set_by_organization_id=None, outcome=None,
                   reasons=["attachment_concerns", "caregiver_depression"],
                   reason_detail="Mother reports low mood", urgency="routine",
                   shared_categories=["identity", "contact", "referral_reason"],
                   consent_ids=[str(consent)], part_c_identified_on=created.date(),
                   referral_due_by=created.date() + timedelta(days=7), timeline_due_by=None,
                   timeline_paused_since=None, sent_at=None, received_at=None,
                   created_at=created, updated_at=created, version=1)
        events = [dict(referral_version=1, occurred_at=created, from_status=None,
                       to_status=first if first == "draft" else "requested",
                       organization_id=clinic, client_id=clinic_client)]
        if first != "draft":
            row.update(status="requested", sent_at=created)
        version = 1
        note_ids = []
        for step in steps[1:]:
            to, reason, outcome, business = (step, None, None, None) if isinstance(step, str) \
                else step
            at = w.tick(minutes=5)
            version += 1
            by = clinic if to == "cancelled" else provider
            note = None
            if to == "on_hold" and reason in ("family_circumstances", "awaiting_consent"):
                note = uuid.uuid4()
                note_ids.append(dict(id=note, referral_id=referral,
                                     author_organization_id=provider, category="service_status",
                                     body="Family asked to wait until after the move",
                                     created_at=at))
            if to == "received":
                row["received_at"] = at
                row["timeline_due_by"] = at.date() + timedelta(days=45)
            if row["status"] == "on_hold" and row["timeline_paused_since"] is not None:
                # The old rule: each ended pause pushed the date back by its days, rounded up.
                paused = at - row["timeline_paused_since"]
                days = -(-paused // timedelta(days=1))
                row["timeline_due_by"] += timedelta(days=days)
                row["timeline_paused_since"] = None
            if to == "on_hold" and reason in ("family_circumstances", "awaiting_consent") \
                    and row["timeline_due_by"] is not None:
                row["timeline_paused_since"] = at
            events.append(dict(referral_version=version, occurred_at=at,
                               from_status=row["status"], to_status=to,
                               business_status=business, reason=reason, outcome=outcome,
                               organization_id=by,
                               client_id=clinic_client if by == clinic else provider_client,
                               note_id=note))
            row.update(status=to, business_status=business, outcome=outcome,
                       status_reason=reason,
                       status_set_by_organization_id=by if (reason or outcome) else None,
                       updated_at=at, version=version)
        w.insert("referrals", **row)
        for note in note_ids:
            w.insert("referral_notes", **note)
        for event in events:
            w.insert("referral_events", id=uuid.uuid4(), referral_id=referral, **event)
        # And a coordination note each way.
        for author in (clinic, provider):
            w.insert("referral_notes", id=uuid.uuid4(), referral_id=referral,
                     author_organization_id=author, category="coordination_notes",
                     body="Called Tuesday; voicemail.", created_at=w.tick())
        s.referrals[label] = referral
        w.event(action="create", organization=clinic, client=clinic_client,
                reason="consent", purpose="referral", resource_type="referral",
                resource_id=referral, family_id=family,
                categories=("identity", "contact", "referral_reason"), consent_ids=(consent,),
                path="/api/v1/referrals", method="POST")
        w.event(action="transition", organization=provider, client=provider_client,
                reason="consent", purpose="referral", resource_type="referral",
                resource_id=referral, family_id=family, categories=("identity",),
                consent_ids=(consent,), path=f"/api/v1/referrals/{referral}/transitions",
                method="POST")
