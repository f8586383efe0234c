"""The app on a migrated database, each test in a rolled-back transaction, factories and tokens.

TEST_DATABASE_URL picks the database (default: a fresh SQLite file); `.ci/run` runs the suite
once on SQLite and once on a fresh PostgreSQL database.
"""

import base64
import os
import uuid
from contextlib import contextmanager
from datetime import date, timedelta

import flask_migrate
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import scoped_session, sessionmaker

os.environ["APP_ENV"] = "test"

from app import create_app  # noqa: E402
from audit.sealer import seal  # noqa: E402
from auth.models import AccessToken  # noqa: E402
from auth.scopes import SCOPES  # noqa: E402
from auth.service import create_client  # noqa: E402
from core import time as clock  # noqa: E402
from core.config import normalize_database_url  # noqa: E402
from core.db import db  # noqa: E402
from core.ids import new_secret, secret_digest  # noqa: E402
from organizations.service import create_organization  # noqa: E402

TEST_SECRET_KEY = "test-secret-key-" + "0" * 48


def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return normalize_database_url(url)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


def make_app(url: str, **overrides):
    """The service as the suite builds it, on `url`; `overrides`: settings of a test's own."""
    return create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "LOG_LEVEL": "WARNING",
        # Scheduled checkpoints off: tests make them on demand, or turn the schedule on.
        "AUDIT_CHECKPOINT_INTERVAL": 0,
        # No background sealing: tests seal as they commit (see _isolated), or on purpose.
        "AUDIT_SEAL_INTERVAL_MS": 0,
        # One app serves the whole session: tests of the limits build their own.
        "RATE_LIMIT_API": "1000000 per minute",
        "RATE_LIMIT_TOKEN": "1000000 per minute",
        **overrides,
    })


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    application = make_app(database_url(tmp_path_factory))
    with application.app_context():
        flask_migrate.upgrade()  # the schema comes from the migrations, in tests too
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _isolated(request, app):
    """Run each test inside one outer transaction that is rolled back afterwards."""
    if "no_db" in request.keywords:
        yield
        return
    with app.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    # Each app context (each request) gets its own session; commits release a savepoint.
    sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                            expire_on_commit=False)
    if connection.dialect.name == "postgresql" and "unsealed" not in request.keywords:
        # Served, workers seal committed audit events into the chain within moments
        # (audit/sealer.py); here nothing truly commits, so seal as each commit ends and the
        # tests read a current chain (tests/audit/test_sealing.py tests the waiting).
        event.listen(sessions, "after_commit", lambda _session: seal(connection))
    db.session = scoped_session(sessions, scopefunc=original.registry.scopefunc)
    try:
        yield
    finally:
        # Flask-SQLAlchemy removed each context's session at its teardown.
        db.session = original
        outer.rollback()
        connection.close()
        clock.freeze(None)


@pytest.fixture
def empty_database(app, tmp_path):
    """The URL of a new, empty database on the suite's server, dropped afterwards."""
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"{url.database}_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


@contextmanager
def served_app(url: str, **overrides):
    """An app of its own on the (fresh) database `url`, migrated, inside its app context: its
    commits are real, as a served request's are (no rolled-back outer transaction);
    `overrides`: settings of its own (see make_app)."""
    served = make_app(url, **overrides)
    with served.app_context():
        flask_migrate.upgrade()
        try:
            yield served
            db.session.rollback()
        finally:
            sealer = served.extensions.get("audit_sealer")
            if sealer is not None:
                sealer.stopped.set()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def served(app, empty_database):
    """`served_app` on a fresh database."""
    with served_app(empty_database) as served:
        yield served


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    """An app context for tests that touch the database directly."""
    with app.app_context():
        yield
        db.session.commit()


def _unused_name(name: str, type: str) -> str:
    """`name`, or `name 2`, `name 3`, ...: the first no organization of `type` has."""
    from core.text import name_key
    from organizations.models import Organization

    taken = set(db.session.scalars(sa.select(Organization.name_key).where(
        Organization.type == type, Organization.name_key.startswith(name_key(name)))))
    number = 1
    while name_key(candidate := name if number == 1 else f"{name} {number}") in taken:
        number += 1
    return candidate


class Factory:
    """Builds organizations, clients and tokens, committed into the test's transaction."""

    def __init__(self, app):
        self.app = app

    def organization(self, name=None, type="imh_provider",
                     counties=("Washtenaw",), languages=("en",), accepting_referrals=False):
        with self.app.app_context():
            if name is None:
                # The directory lists one organization per name and type: a test's second
                # organization made without a name is another agency.
                name = _unused_name("Riverbend Infant Mental Health", type)
            organization = create_organization(
                name=name, type=type, counties=counties, languages=languages,
                accepting_referrals=accepting_referrals)
            db.session.commit()
            return organization

    def client(self, organization=None, scopes=tuple(SCOPES)):
        organization = organization or self.organization()
        with self.app.app_context():
            issued = create_client(organization_id=organization.id, scopes=list(scopes),
                                   name=f"client of {organization.name}")
            db.session.commit()
            return issued.client, issued.client_secret

    def token(self, organization=None, scopes=tuple(SCOPES), *, oauth_client=None,
              lifetime=3600, revoked=False) -> str:
        """A bearer token for `organization` with `scopes`, stored as the service stores one."""
        if oauth_client is None:
            oauth_client, _ = self.client(organization, scopes)
        raw = new_secret()
        with self.app.app_context():
            issued_at = clock.now()
            db.session.add(AccessToken(
                token_hash=secret_digest(raw), client_id=oauth_client.id, scope=" ".join(scopes),
                issued_at=issued_at, expires_at=issued_at + timedelta(seconds=lifetime),
                revoked_at=issued_at if revoked else None))
            db.session.commit()
        return raw


    def family(self, custodian, *, given_name="Amara", family_name="Okafor",
               birth_date=date(2026, 3, 2), caregivers=None, **fields):
        """A family held by `custodian`; by default a mother with legal authority and a
        grandmother without."""
        from families.service import create_family

        caregivers = caregivers or [
            {"given_name": "Ngozi", "family_name": "Okafor", "relationship": "mother",
             "has_legal_authority": True, "phone": "+17345550101",
             "email": "ngozi@example.org"},
            {"given_name": "Ada", "family_name": "Okafor", "relationship": "grandparent",
             "has_legal_authority": False, "phone": None, "email": None},
        ]
        data = {"child": {"given_name": given_name, "family_name": family_name,
                          "birth_date": birth_date, "county": "Washtenaw"},
                "caregivers": caregivers, "preferred_language": "es",
                "interpreter_needed": True,
                "cultural_considerations": "Grandmother raises the baby with the mother.",
                "contact_preferences": {"do_not_contact": False, "methods": ["phone", "text"],
                                        "best_times": "after 5pm"}}
        data.update(fields)
        with self.app.app_context():
            family, _ = create_family(_ActorOf(custodian), data=data)
            db.session.commit()
            family.caregivers  # noqa: B018 (loaded while the session is open)
            return family

    def consent(self, family, organizations, *, purposes=("referral", "care_coordination"),
                categories=("identity", "contact"), effective_at=None, expires_in_days=180,
                revoked=False, recorder=None, expires_at=None, revoked_at=None):
        """A consent granted by the family's first caregiver with legal authority
        (`expires_at`, `revoked_at`: exact instants, over the days and the flag)."""
        from consent.models import Consent, ConsentParty

        effective_at = effective_at or clock.now() - timedelta(days=1)
        grantor = next(c for c in family.caregivers if c.has_legal_authority)
        with self.app.app_context():
            consent = Consent(
                family_id=family.id, grantor_caregiver_id=grantor.id,
                grantor_legal_authority="parent", purposes=list(purposes),
                categories=list(categories), effective_at=effective_at,
                expires_at=expires_at or effective_at + timedelta(days=expires_in_days),
                method="electronic_signature", signed_at=effective_at,
                explained_in_language="es", interpreter_used=True,
                revocation_rights_explained=True,
                recorded_by_organization_id=(recorder or organizations[0]).id,
                recorded_at=clock.now(),
                revoked_at=revoked_at or (clock.now() if revoked else None),
                party_count=len(organizations),
                parties=[ConsentParty(organization_id=o.id, family_id=family.id, position=n)
                         for n, o in enumerate(organizations)])
            db.session.add(consent)
            db.session.commit()
            return consent


class _ActorOf:
    """The actor fields a service needs, for factories that act as an organization."""

    def __init__(self, organization):
        self.organization_id = organization.id
        self.client_id = "factory"
        self.token_id = None
        self.organization = organization


@pytest.fixture
def make(app):
    return Factory(app)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> dict:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def count(model) -> int:
    """Rows of a model, read in a fresh app context."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def audit_events(**filters) -> list:
    """The committed audit events matching `filters`, oldest first (inside an app context)."""
    from audit.models import AuditEvent

    stmt = sa.select(AuditEvent).filter_by(**filters).order_by(AuditEvent.seq)
    return list(db.session.scalars(stmt))


PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response, status, slug, extra=()):
    """A problem+json body of the contract's shape (plus the `extra` members named), with no
    trace of the server's insides."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body.keys() == PROBLEM_KEYS | ({"errors"} if status == 422 else set()) | set(extra), \
        body
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert 'File "' not in text
    return body


def assert_validation_error(response, *paths):
    """A 422 whose `errors` names exactly these field paths, each with messages."""
    body = assert_problem(response, 422, "validation-error")
    assert set(body["errors"]) == set(paths), body["errors"]
    for path in paths:
        messages = body["errors"][path]
        assert messages and all(isinstance(m, str) and m for m in messages)
    return body


@contextmanager
def statements_sent(app):
    """The (statement, parameters) the app's engine sends while the block runs."""
    sent = []

    def capture(conn, cursor, statement, parameters, *_):
        sent.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)
