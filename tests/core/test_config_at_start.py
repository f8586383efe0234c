"""Configuration as the operator sets it, read by the production start in a process of its
own: a bad setting stops the start with a message naming it, never a server that starts and
fails its requests; a documented value means what the README says it means."""

import subprocess
import sys
import uuid

import pytest

from tests.operator_support import ROOT, environ, flask

pytestmark = pytest.mark.no_db


def _start(env: dict) -> subprocess.CompletedProcess:
    """The production start's first step, as gunicorn.conf.py's on_starting runs it."""
    return subprocess.run([sys.executable, "-c", "import app; app.app"],  # noqa: S603
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_url_is_a_configuration_error(tmp_path, url):
    """README: DATABASE_URL is `sqlite:///path` or `postgresql://...`; "Anything else ...
    stops the start with a configuration error". An in-memory database is no file: `db
    upgrade` would migrate a database that vanishes with the process and prints
    {"revision": ..., "from": null}, exit 0, and every later command would say "no schema
    yet"; the service would serve a new, empty database on each connection."""
    result = flask(environ(tmp_path, url), "db", "upgrade")

    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert "DATABASE_URL" in result.stderr


def test_the_documented_default_database_url_written_out_names_the_default_file():
    """README: DATABASE_URL defaults to `sqlite:///instance/imh.sqlite3`. An operator who
    writes that value out (in a unit file, beside the other settings), here with another
    file name so as not to touch a real database, from the checkout as the README's
    commands run, expects instance/<file>, as any tool reads a relative path (not
    Flask-SQLAlchemy's instance/instance/<file>)."""
    name = f"review-{uuid.uuid4().hex[:8]}.sqlite3"
    expected = ROOT / "instance" / name
    try:
        result = flask(environ(ROOT, f"sqlite:///instance/{name}"), "db", "upgrade")
        assert result.returncode == 0, result.stderr[-300:]
        assert expected.exists()
    finally:
        for suffix in ("", "-wal", "-shm"):
            for folder in (ROOT / "instance", ROOT / "instance" / "instance"):
                (folder / f"{name}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("query", ["timeout=5", "retry_on_timeout=yes&foo=bar"])
def test_a_redis_url_with_an_option_redis_does_not_know_stops_the_start(tmp_path, query):
    """API.md: a bad setting is refused at start. A REDIS_URL with an option the Redis client
    does not take (`timeout` for `socket_timeout`) would start, and every counted request
    be a 500 (`TypeError` in the Redis connection), API and token endpoint alike. The start
    fails instead (no Redis server is needed to see it)."""
    env = environ(tmp_path, f"sqlite:///{tmp_path / 'x.sqlite3'}",
                  REDIS_URL=f"redis://127.0.0.1:6379/0?{query}")

    result = _start(env)

    assert result.returncode != 0
    assert result.stderr.startswith("configuration error: REDIS_URL"), result.stderr[-300:]


@pytest.mark.parametrize("name", ["RATE_LIMIT_API", "RATE_LIMIT_TOKEN"])
def test_an_empty_rate_limit_is_its_default_as_every_other_empty_setting(tmp_path, name):
    """An empty setting (`RATE_LIMIT_API=` in an env file, a compose file's blank) is the
    default, as for LOG_LEVEL, REDIS_URL, DATABASE_URL and the integer settings (API.md:
    "each with a safe default where one exists")."""
    result = _start(environ(tmp_path, f"sqlite:///{tmp_path / 'x.sqlite3'}", **{name: ""}))
    assert result.returncode == 0, result.stderr[-300:]


@pytest.mark.parametrize(("name", "value"), [
    ("RATE_LIMIT_API", "600/fortnight"), ("RATE_LIMIT_API", "abc"),
    ("RATE_LIMIT_TOKEN", "0 per minute"), ("TOKEN_LIFETIME", "-5"),
    ("AUDIT_CHECKPOINT_INTERVAL", "1h"), ("AUDIT_SIGNING_KEY", "not-a-key"),
    ("AUDIT_PREVIOUS_PUBLIC_KEYS", "AAAA"), ("OAUTH_ISSUER", "imh.example.org"),
])
def test_a_malformed_setting_stops_a_command_naming_it(tmp_path, name, value):
    """Every command stops in one line naming the setting."""
    env = environ(tmp_path, f"sqlite:///{tmp_path / 'x.sqlite3'}", **{name: value})
    result = flask(env, "client", "list")
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith(f"configuration error: {name}"), result.stderr[-300:]
    assert "Traceback" not in result.stderr
