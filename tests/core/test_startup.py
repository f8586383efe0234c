"""Starting the service: a bad setting stops the start with one line, "configuration error:
...", naming the setting; never a traceback, and never a server that keeps trying to start."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from core.db import db
from tests.conftest import assert_problem, basic, bearer

pytestmark = pytest.mark.no_db
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STRONG = "Xq7Lm2Rv9Tz4Kp8Wn3Hb6Fd1Jc5Gs0Ye"
#: A configured signing key, so that no start of these tests writes into instance/.
SEED = "4PpF0AJpArWiFB4rG415+W7rli6AbBIRJKSz4StkuNs="
#: Every run of gunicorn here ends within this many seconds, or the test fails.
GUNICORN_TIMEOUT = 30


def _environ(tmp_path, **settings) -> dict:
    """A production environment that starts (HOME is the test's own folder: gunicorn keeps a
    control socket under it), with `settings` changed; a None setting is left out."""
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
               "APP_ENV": "production", "SECRET_KEY": STRONG, "AUDIT_SIGNING_KEY": SEED,
               "DATABASE_URL": f"sqlite:///{tmp_path / 'start.sqlite3'}"}
    environ.update(settings)
    return {k: v for k, v in environ.items() if v is not None}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gunicorn(environ: dict) -> tuple[int, str]:
    """Run the production start, `gunicorn -c gunicorn.conf.py app:app`, on a free port; its
    exit status and output. A server still running after GUNICORN_TIMEOUT is stopped and the
    test fails."""
    environ = {"BIND": f"127.0.0.1:{_free_port()}", "WEB_CONCURRENCY": "1", **environ}
    server = subprocess.Popen(  # noqa: S603 (our own virtualenv's gunicorn)
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], cwd=ROOT, env=environ,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = server.communicate(timeout=GUNICORN_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
        pytest.fail(f"gunicorn still running after {GUNICORN_TIMEOUT} s, "
                    f"{output.count('Booting worker')} workers booted")
    return server.returncode, output


@pytest.mark.parametrize(("name", "value"), [
    ("LOG_LEVEL", "bogus"),
    ("LOG_LEVEL", "10"),
    ("DATABASE_URL", "nonsense"),
    ("DATABASE_URL", " sqlite:///imh.sqlite3"),
    ("DATABASE_URL", "mysql://user@host/imh"),
    ("DATABASE_URL", "postgresql+psycopg2://user@host/imh"),
    ("DATABASE_URL", "postgresql://user@host:port/imh"),
    # libpq reads the query: what it cannot take failed every connection, after the start.
    ("DATABASE_URL", "postgresql://user@host:5432/imh?connect_timeout=abc"),
    ("DATABASE_URL", "postgresql://user@host:5432/imh?port=abc"),
    ("DATABASE_URL", "postgresql://user@host:5432/imh?tcp_user_timeout=-1"),
    ("DATABASE_URL", "postgresql://user@host:5432/imh?statement_timeout=5"),
    ("DATABASE_URL", "postgresql://user@host:5432/imh?sslmode=require&sslmode=disable"),
    ("REDIS_URL", "nonsense"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("REDIS_URL", "memcached://127.0.0.1:11211"),
    ("REDIS_URL", "mongodb://127.0.0.1:27017"),
    ("REDIS_URL", "redis://127.0.0.1:notaport"),
    ("REDIS_URL", "redis://127.0.0.1:99999/0"),
    # Not Redis: the `limits` MemoryStorage, per process, that core/limits.py avoids on
    # purpose (its timer thread fails under gthread workers: alisaifee/limits#26).
    ("REDIS_URL", "memory://"),
])
def test_a_malformed_setting_is_a_configuration_error_naming_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name) as refused:
        load_config(tmp_path, {"SECRET_KEY": STRONG, name: value})
    if name != "LOG_LEVEL":  # a URL may hold a password: it is not repeated
        assert value.strip() not in str(refused.value)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("LOG_LEVEL", "warning", "WARNING"),
    ("LOG_LEVEL", "", "INFO"),
    # A relative path, as any tool reads it: from the working directory.
    ("DATABASE_URL", "sqlite:///imh.sqlite3", f"sqlite:///{os.path.abspath('imh.sqlite3')}"),
    ("DATABASE_URL", "postgres://user@host:5432/imh", "postgresql+psycopg://user@host:5432/imh"),
    ("DATABASE_URL", "postgresql://user@host/imh?connect_timeout=5&sslmode=require",
     "postgresql+psycopg://user@host/imh?connect_timeout=5&sslmode=require"),
    ("REDIS_URL", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("REDIS_URL", "rediss://:pw@redis.example.org:6380/1", "rediss://:pw@redis.example.org:6380/1"),
    ("REDIS_URL", "redis+unix:///run/redis.sock", "redis+unix:///run/redis.sock"),
    ("REDIS_URL", "", None),
])
def test_a_well_formed_setting_is_kept(tmp_path, name, value, expected):
    key = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI"}.get(name, name)
    assert load_config(tmp_path, {"SECRET_KEY": STRONG, name: value})[key] == expected


@pytest.mark.parametrize("setting", [{"LOG_LEVEL": "bogus"}, {"REDIS_URL": "memory://"},
                                     {"DATABASE_URL": "mysql://user@host/imh"}])
def test_the_production_entry_point_reports_a_malformed_setting_in_one_line(tmp_path, setting):
    result = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-c", "import app; app.app"], cwd=ROOT,
        env=_environ(tmp_path, **setting), capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert result.stderr.startswith(f"configuration error: {next(iter(setting))}")


def test_the_console_script_reports_a_configuration_error_without_a_traceback(tmp_path):
    result = subprocess.run(  # noqa: S603 (our own virtualenv's console script)
        [str(BIN / "imh-referral"), "client", "list"], cwd=tmp_path,
        env=_environ(tmp_path, SECRET_KEY=None), capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert result.stderr.startswith("configuration error: SECRET_KEY")


@pytest.mark.parametrize("workers", ["1", "8"])
def test_gunicorn_stops_on_a_configuration_error(tmp_path, workers):
    """The README's production start without a SECRET_KEY stops in the master, with its one
    line and gunicorn's "App failed to load" status, before any worker boots (several
    workers failing at once would trip the master's halt)."""
    status, output = _gunicorn(_environ(tmp_path, SECRET_KEY=None, WEB_CONCURRENCY=workers))
    assert status == 4, output[-400:]
    assert "configuration error: SECRET_KEY" in output
    assert "Booting worker" not in output
    assert "Traceback" not in output, output[-400:]


@pytest.mark.parametrize("setting", [
    {"GUNICORN_THREADS": "0"}, {"GUNICORN_THREADS": "four"}, {"GUNICORN_TIMEOUT": "0"},
    {"WEB_CONCURRENCY": "0"}, {"GIL_SWITCH_INTERVAL": "fast"}, {"GIL_SWITCH_INTERVAL": "0"},
    {"GIL_SWITCH_INTERVAL": "nan"},
])
def test_a_malformed_gunicorn_setting_is_a_configuration_error(tmp_path, setting):
    """Refused in the master as gunicorn.conf.py is read: nothing is bound or booted."""
    status, output = _gunicorn(_environ(tmp_path, **setting))
    assert status != 0
    assert output.startswith(f"configuration error: {next(iter(setting))}"), output[-400:]
    assert "Booting worker" not in output
    assert "Traceback" not in output, output[-400:]


def test_a_service_started_before_its_database_is_migrated_answers_503(empty_database):
    """Served before `flask db upgrade`, or deployed ahead of its migration: every call is 503
    with Retry-After, as /readyz is, on PostgreSQL (an undefined table) as on SQLite."""
    from tests.conftest import make_app

    unmigrated = make_app(empty_database)
    try:
        web = unmigrated.test_client()
        for answer in (web.get("/api/v1/me", headers=bearer("abc")),
                       web.post("/oauth/token", data={"grant_type": "client_credentials"},
                                headers=basic("00000000-0000-4000-8000-000000000000", "x"))):
            body = assert_problem(answer, 503, "service-unavailable")
            assert body["detail"] == \
                "The database schema is not at the newest migration; retry shortly"
            assert answer.headers["Retry-After"]
    finally:
        with unmigrated.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("secret", [
    "a" * 32,
    "ab" * 32,  # too few different characters
    "change-me-change-me-change-me-change-me",
    "my-super-SECRET-key-for-production-2026",  # a placeholder word, in any case
    "Password1Password2Password3Password4",
])
def test_production_refuses_a_secret_key_that_is_not_random(tmp_path, secret):
    with pytest.raises(ConfigError, match="SECRET_KEY must be set to a random value"):
        load_config(tmp_path, {"APP_ENV": "production", "SECRET_KEY": secret})


@pytest.mark.parametrize("secret", [STRONG, "9f3c1e7a5b2d4c8e0a6f1b3d5e7c9a2b",
                                    "k5JX1T0hZ7QmVq-2nR8wLp_cYb4sFd9gEa6uHo3iKt0"])
def test_production_accepts_a_random_secret_key(tmp_path, secret):
    assert load_config(tmp_path, {"APP_ENV": "production", "SECRET_KEY": secret})[
        "SECRET_KEY"] == secret
