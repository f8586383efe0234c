"""A request whose commit fails is answered as any database error is (core/dberrors.py): 503
with the Retry-After its cause calls for, or 500 when the fault is the code's; nothing is
disclosed either way."""

import sqlalchemy as sa

from core.db import db
from tests.conftest import assert_problem, bearer


class _Refused(Exception):
    """A driver error carrying a SQLSTATE, as psycopg's do."""

    def __init__(self, sqlstate: str):
        super().__init__(f"refused ({sqlstate})")
        self.sqlstate = sqlstate


def _commit_raising(monkeypatch, error: Exception) -> None:
    def commit():
        raise error

    monkeypatch.setattr(db.session, "commit", commit)


def test_a_commit_that_meets_concurrent_work_is_503_retry_at_once(client, make, monkeypatch):
    token = make.token()
    _commit_raising(monkeypatch, sa.exc.OperationalError("COMMIT", {}, _Refused("40001")))

    response = client.get("/api/v1/me", headers=bearer(token))

    assert_problem(response, 503, "service-unavailable")
    assert response.headers["Retry-After"] == "1"
    assert "organization" not in response.json


def test_a_commit_the_code_got_wrong_is_500_not_retry_shortly(client, make, monkeypatch,
                                                                 caplog):
    """A constraint or one of the service's own triggers refusing the commit: no retry mends
    it, so no Retry-After tells the client to try (it said 503 "retry shortly")."""
    token = make.token()
    _commit_raising(monkeypatch, sa.exc.IntegrityError("COMMIT", {}, _Refused("23505")))

    response = client.get("/api/v1/me", headers=bearer(token))

    assert_problem(response, 500, "internal-error")
    assert "Retry-After" not in response.headers
    assert "refused (23505)" not in caplog.text  # the driver's message may hold family data
