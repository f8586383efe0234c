"""No family data in logs: errors are logged by type and place, never by message or parameters."""

import logging

import pytest
import sqlalchemy as sa

from core.db import db
from tests.conftest import make_app

pytestmark = pytest.mark.no_db


def test_an_unexpected_error_is_logged_without_its_message(app, caplog):
    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"])

    @other.get("/boom")
    def boom():
        raise ValueError("Amara Okafor, born 2026-03-02, +17345550101")

    with caplog.at_level(logging.ERROR):
        answer = other.test_client().get("/boom")
    assert answer.status_code == 500
    assert "Amara" not in answer.get_data(as_text=True)
    assert "ValueError" in caplog.text
    assert "Amara" not in caplog.text and "+1734" not in caplog.text
    with other.app_context():
        db.engine.dispose()


def test_a_database_error_is_logged_without_its_statement_parameters(app, caplog):
    """A statement the database refuses, sent a family's name: the log, and the answer, name
    the error, not what was sent."""
    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"])

    @other.get("/refused")
    def refused():
        # Refused for the value itself, which PostgreSQL's message quotes back.
        refusing = ("SELECT CAST(:name AS integer)" if db.engine.dialect.name == "postgresql"
                    else "SELECT json(:name)")
        db.session.execute(sa.text(refusing), {"name": "Amara Okafor, born 2026-03-02"})

    with caplog.at_level(logging.DEBUG):
        answer = other.test_client().get("/refused")
    assert answer.status_code in (500, 503)
    assert "Amara" not in answer.get_data(as_text=True)
    assert "Error" in caplog.text  # the error is logged, by type
    assert "Amara" not in caplog.text and "2026-03-02" not in caplog.text
    with other.app_context():
        db.engine.dispose()


def test_a_failing_after_commit_hook_is_logged_without_its_message(app, caplog):
    """Housekeeping after a request's commit (a scheduled checkpoint) that fails is logged by
    type and place; the answer stands."""
    from core.web import on_commit

    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"])

    def failing_hook():
        raise ValueError("Amara Okafor, born 2026-03-02")

    on_commit(other, failing_hook)
    with caplog.at_level(logging.DEBUG):
        answer = other.test_client().get("/healthz")
    assert answer.status_code == 200
    assert "after-commit hook failed: ValueError" in caplog.text
    assert "Amara" not in caplog.text and "2026-03-02" not in caplog.text
    with other.app_context():
        db.engine.dispose()
