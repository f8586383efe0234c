"""Auditing the auditors.

README "The audit trail": "Every access to family information ... is an audit event";
DOMAIN "Confidentiality": every access is recorded. The service does record its auditors'
reads (search, read, export; tests/audit/test_queries.py test_reads_of_the_trail_are_recorded),
and when an auditor reads a family's accounting of disclosures the event names the family
(families/service.py list_disclosures: family_id=family.id). But reading the trail of one
family through the events API (`?family_id=F`, or one event about F) is recorded with no
family at all: "who looked at family F's trail" cannot be answered with `?family_id=F`, while
those pages show which organizations saw F, for what purpose, under which consents and which
categories (a `substance_use` category alone says something about the family).
"""

import uuid

import sqlalchemy as sa

import audit
from audit.models import AuditEvent
from core.db import db
from tests.conftest import bearer

FAMILY = uuid.UUID("12121212-1212-4212-8212-121212121212")


def _auditor_events(app):
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent)
                                       .where(AuditEvent.resource_type == "audit_event")
                                       .order_by(AuditEvent.seq)))


def test_a_search_of_one_familys_trail_is_recorded_as_about_that_family(app, client,
                                                                        auditor):
    with app.app_context():
        audit.record(action="read", outcome="permit", reason="consent",
                     resource_type="family", resource_id=FAMILY, family_id=FAMILY,
                     categories=["identity"], purpose="referral")
        db.session.commit()
    assert client.get(f"/api/v1/audit/events?family_id={FAMILY}",
                      headers=bearer(auditor)).status_code == 200
    (search,) = _auditor_events(app)
    assert search.action == "search"
    assert search.family_id == FAMILY


def test_reading_one_event_about_a_family_is_recorded_as_about_that_family(app, client,
                                                                           auditor):
    with app.app_context():
        audit.record(action="read", outcome="permit", reason="consent",
                     resource_type="family", resource_id=FAMILY, family_id=FAMILY,
                     categories=["identity"], purpose="referral")
        db.session.commit()
        seq = db.session.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    assert client.get(f"/api/v1/audit/events/{seq}", headers=bearer(auditor)).status_code == 200
    (read,) = _auditor_events(app)
    assert read.action == "read"
    assert read.family_id == FAMILY
