"""An organization that may not know a family exists is answered 404 at once, whatever
locks the family's row: it never waits on the custodian's work (a hostile partner's review,
session 11). PostgreSQL: SQLite has no row locks."""

import uuid

import pytest

from tests.referrals.conftest import network

IGNORED_HEADERS = {"x-request-id", "content-length", "x-ratelimit-remaining", "x-ratelimit-reset"}


def _shape(response, *ids):
    """Status, headers (but the request id) and body, with the ids blanked."""
    text = response.get_data(as_text=True)
    for each in ids:
        text = text.replace(str(each), "<id>")
    body = text
    if response.is_json:
        import json
        data = json.loads(text)
        if isinstance(data, dict):
            data.pop("request_id", None)
            data.pop("instance", None)
        body = data
    headers = sorted((k.lower(), v) for k, v in response.headers.items()
                     if k.lower() not in IGNORED_HEADERS)
    return response.status_code, headers, body


@pytest.fixture
def short_timeouts(empty_database):
    """The service on a fresh database, as served, with a short statement timeout (the
    production setting DATABASE_STATEMENT_TIMEOUT_MS, lowered so the test runs quickly)."""
    if empty_database.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite has no row locks")
    from tests.conftest import served_app

    with served_app(empty_database, SQLALCHEMY_ENGINE_OPTIONS={
        "pool_pre_ping": True, "hide_parameters": True, "isolation_level": "READ COMMITTED",
        "connect_args": {"options": "-c statement_timeout=1000 "
                                    "-c idle_in_transaction_session_timeout=20000"}}) as served:
        yield served


@pytest.mark.no_db
def test_a_stranger_is_answered_404_whatever_locks_another_organizations_family(
        short_timeouts):
    """While the custodian's own work holds its family's row (a PATCH, a consent being
    recorded or revoked, a referral being sent: all `lock_family`), a stranger that may not
    know the family exists is answered 503 `service-unavailable` with `Retry-After: 1` after
    the statement timeout, where an unknown id is answered 404 at once: the stranger locks
    (FOR UPDATE / FOR KEY SHARE) the row of a family before it is decided whether it may
    know of it."""
    import sqlalchemy as sa

    from core.db import db
    from families.models import Family
    from tests.conftest import Factory

    app = short_timeouts
    make = Factory(app)
    net = network(make)
    client = app.test_client()
    with app.app_context():
        engine = db.engine
    holder = engine.connect()
    held = holder.begin()
    holder.execute(sa.select(Family.id).where(Family.id == net.family.id).with_for_update())
    try:
        differences = {}
        for method, path, body in (
                ("GET", "/api/v1/families/{f}", None),
                ("PATCH", "/api/v1/families/{f}", {"interpreter_needed": True}),
                ("GET", "/api/v1/families/{f}/consents", None),
                ("POST", "/api/v1/consent-decisions",
                 {"family_id": "{f}", "purpose": "referral", "categories": ["identity"]}),
                ("POST", "/api/v1/referrals",
                 {"family_id": "{f}", "to_organization_id": str(net.provider.id),
                  "reasons": ["other"], "shared_categories": ["identity"]})):
            shapes = []
            for family_id in (net.family.id, uuid.uuid4()):
                data = None if body is None else {
                    k: (str(family_id) if v == "{f}" else v) for k, v in body.items()}
                answer = client.open(path.format(f=family_id), method=method, json=data,
                                     headers=net.as_stranger)
                shapes.append(_shape(answer, family_id))
            if shapes[0] != shapes[1]:
                differences[f"{method} {path}"] = (shapes[0][0], shapes[1][0],
                                                   dict(shapes[0][1]).get("retry-after"))
        assert differences == {}
    finally:
        held.rollback()
        holder.close()
