"""No family data in logs: errors are logged by type and place, never by message or parameters."""

import logging

import pytest

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


def test_database_errors_never_echo_parameters(app):
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["hide_parameters"] is True
