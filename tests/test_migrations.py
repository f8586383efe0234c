"""The schema comes from the migrations alone, and they agree with the models."""


import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.db import db
from tests.conftest import make_app


def _differences(application):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


@pytest.mark.no_db
def test_migrations_build_the_models_schema_and_undo_cleanly(empty_database):
    application = make_app(empty_database)
    with application.app_context():
        try:
            flask_migrate.upgrade()
            assert _differences(application) == []

            flask_migrate.downgrade(revision="base")
            tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
            assert tables == set()

            flask_migrate.upgrade()
            assert _differences(application) == []
        finally:
            db.engine.dispose()


@pytest.mark.no_db
def test_one_head(app):
    assert len(app.extensions["migration_heads"]) == 1


def test_readyz_reports_the_suite_database_at_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "database": "ok", "migrations": "head"}


@pytest.mark.no_db
def test_readyz_refuses_an_unmigrated_database(tmp_path):
    application = make_app(f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}")
    response = application.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["type"] == "/problems/service-unavailable"
    assert response.headers["Retry-After"]
    with application.app_context():
        db.engine.dispose()


@pytest.mark.no_db
def test_readyz_reports_an_unreachable_database():
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    application = make_app("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    response = application.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["detail"] == "The database is unreachable"


@pytest.mark.no_db
def test_healthz_needs_no_database():
    application = make_app("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    response = application.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
