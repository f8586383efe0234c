"""Configuration: safe defaults, and a production start that refuses a missing or weak secret."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, load_config, normalize_database_url

pytestmark = pytest.mark.no_db
ROOT = Path(__file__).resolve().parents[2]
STRONG = "9f3c1e7a5b2d4c8e0a6f1b3d5e7c9a2b4d6f8e0c1a3b5d7f9e2c4a6b8d0f1e3c"


@pytest.mark.parametrize("secret", [None, "", "change-me", "short-secret"])
def test_production_refuses_a_missing_default_or_short_secret(tmp_path, secret):
    environ = {"APP_ENV": "production"}
    if secret is not None:
        environ["SECRET_KEY"] = secret
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(tmp_path, environ)


def test_production_defaults(tmp_path):
    config = load_config(tmp_path, {"SECRET_KEY": STRONG})
    assert config["APP_ENV"] == "production"
    assert config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert config["TOKEN_LIFETIME"] == 3600
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'imh.sqlite3'}"
    assert config["OAUTH_ISSUER"] is None
    assert config["TIME_ZONE"] == "America/Detroit"


def test_development_generates_and_keeps_a_secret(tmp_path):
    first = load_config(tmp_path, {"APP_ENV": "development"})["SECRET_KEY"]
    second = load_config(tmp_path, {"APP_ENV": "development"})["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("name,value", [
    ("TOKEN_LIFETIME", "soon"), ("TOKEN_LIFETIME", "0"), ("MAX_CONTENT_LENGTH", "-1"),
    ("APP_ENV", "staging"), ("TIME_ZONE", "Michigan"), ("TIME_ZONE", "../../etc/passwd"),
    ("TIME_ZONE", "EST5EDT/x"), ("TRUSTED_PROXIES", "-1"), ("TRUSTED_PROXIES", "11"),
    ("TRUSTED_PROXIES", "one"),
])
def test_malformed_values_are_refused(tmp_path, name, value):
    with pytest.raises(ConfigError):
        load_config(tmp_path, {"SECRET_KEY": STRONG, name: value})


@pytest.mark.parametrize("name,largest", [
    # Beyond these, a token's expiry or a consent's longest end would pass the year 9999 and
    # every request issuing or recording one would fail: refused at the start instead.
    ("TOKEN_LIFETIME", 365 * 86400), ("CONSENT_MAX_DAYS", 3660),
    ("AUDIT_CHECKPOINT_INTERVAL", 365 * 86400), ("AUDIT_SEAL_INTERVAL_MS", 86400 * 1000),
    ("DATABASE_STATEMENT_TIMEOUT_MS", 2**31 - 1), ("MAX_CONTENT_LENGTH", 2**30),
])
def test_integer_settings_are_bounded_above(tmp_path, name, largest):
    config = load_config(tmp_path, {"SECRET_KEY": STRONG, name: str(largest)})
    assert config.get(name, largest) == largest  # the timeout becomes an engine option
    with pytest.raises(ConfigError, match=f"{name} must be at most {largest}"):
        load_config(tmp_path, {"SECRET_KEY": STRONG, name: str(largest + 1)})


@pytest.mark.parametrize("issuer", [
    "imh.example.org",  # the metadata would publish `imh.example.org/oauth/token`
    "/oauth", "not a url", "//imh.example.org", "https://", "https:///path",
    "ftp://imh.example.org", "https://imh.example.org?tenant=1", "https://imh.example.org#top",
    "https://operator:secret@imh.example.org", "https://imh.example.org:port",
    "https://imh.example.org/a b", "/",
    # A path: RFC 8414 3.1 would put the metadata at the root's well-known address followed by
    # the path, which the service does not serve.
    "https://imh.example.org:8443/referrals",
])
@pytest.mark.parametrize("env", ["production", "development"])
def test_an_oauth_issuer_that_is_not_an_absolute_url_is_refused(tmp_path, issuer, env):
    """RFC 8414 2: the issuer is a URL with a host and no query or fragment; it is the base
    of every endpoint URL the metadata publishes."""
    with pytest.raises(ConfigError, match="OAUTH_ISSUER must be an absolute") as refused:
        load_config(tmp_path, {"APP_ENV": env, "SECRET_KEY": STRONG, "OAUTH_ISSUER": issuer})
    assert "secret" not in str(refused.value)  # the value is not echoed


@pytest.mark.parametrize(("env", "issuer", "expected"), [
    ("production", "https://imh.example.org/", "https://imh.example.org"),
    ("production", "https://imh.example.org:8443/", "https://imh.example.org:8443"),
    ("development", "http://localhost:5000", "http://localhost:5000"),
    ("test", "http://[::1]:5000/", "http://[::1]:5000"),
])
def test_an_absolute_oauth_issuer_is_kept_without_its_trailing_slash(tmp_path, env, issuer,
                                                                     expected):
    config = load_config(tmp_path, {"APP_ENV": env, "SECRET_KEY": STRONG, "OAUTH_ISSUER": issuer})
    assert config["OAUTH_ISSUER"] == expected


def test_production_publishes_an_https_issuer_only(tmp_path):
    """OAuth 2 requires TLS (RFC 6749 1.6, 2.3.1); RFC 8414 2 an https issuer."""
    with pytest.raises(ConfigError, match="absolute https URL"):
        load_config(tmp_path, {"SECRET_KEY": STRONG, "OAUTH_ISSUER": "http://imh.example.org"})


def test_values_from_the_environment(tmp_path):
    config = load_config(tmp_path, {
        "SECRET_KEY": STRONG, "TOKEN_LIFETIME": "600", "OAUTH_ISSUER": "https://imh.example/",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/imh",
    })
    assert config["TOKEN_LIFETIME"] == 600
    assert config["OAUTH_ISSUER"] == "https://imh.example"
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://postgres@127.0.0.1:5432/imh"


@pytest.mark.parametrize(("environ", "budget"), [
    ({"RATE_LIMIT_TOKEN": "5 per minute"}, "5 per minute"),   # API.md's name
    ({"RATE_LIMIT_OAUTH": "7 per minute"}, "7 per minute"),   # its earlier name
    ({"RATE_LIMIT_TOKEN": "5 per minute", "RATE_LIMIT_OAUTH": "7 per minute"}, "5 per minute"),
    ({}, "120 per minute"),
])
def test_the_token_endpoints_budget_is_rate_limit_token(tmp_path, environ, budget):
    assert load_config(tmp_path, {"SECRET_KEY": STRONG, **environ})["RATE_LIMIT_TOKEN"] \
        == budget


@pytest.mark.parametrize("given,expected", [
    ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_database_urls_are_served_through_psycopg_3(given, expected):
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("url", ["postgres://u@h/d", "postgresql://u@h/d",
                                 "postgresql+psycopg://u@h/d"])
def test_every_postgresql_url_gets_the_timeouts_and_read_committed(tmp_path, url):
    config = load_config(tmp_path, {"SECRET_KEY": STRONG, "DATABASE_URL": url,
                                    "DATABASE_STATEMENT_TIMEOUT_MS": "2500"})
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["isolation_level"] == "READ COMMITTED"
    assert options["connect_args"]["options"] == (
        "-c statement_timeout=2500 -c idle_in_transaction_session_timeout=2500")
    # A database host that stops answering ends the connection in seconds, not TCP's minutes.
    assert {name: options["connect_args"][name] for name in (
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout")} == {
        "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10,
        "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 30000}


def test_the_connection_timeouts_a_database_url_names_are_its_own(tmp_path):
    url = "postgresql://u@h/d?connect_timeout=3&keepalives_idle=60"
    options = load_config(tmp_path, {"SECRET_KEY": STRONG, "DATABASE_URL": url})[
        "SQLALCHEMY_ENGINE_OPTIONS"]
    assert "connect_timeout" not in options["connect_args"]
    assert "keepalives_idle" not in options["connect_args"]
    assert options["connect_args"]["tcp_user_timeout"] == 30000


def test_sqlite_gets_neither(tmp_path):
    options = load_config(tmp_path, {"SECRET_KEY": STRONG})["SQLALCHEMY_ENGINE_OPTIONS"]
    assert "isolation_level" not in options and "connect_args" not in options


def test_the_production_entry_point_exits_with_a_message_without_a_secret():
    environ = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "APP_ENV")}
    result = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-c", "import app; app.app"], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("env", ["development", "test"])
def test_a_set_secret_key_that_does_not_look_random_is_used_with_a_warning(tmp_path, env,
                                                                          caplog):
    """Outside production a SECRET_KEY the operator set is used as given (hosts sharing one
    read each other's cursors), never swapped for the instance's generated key, and the log
    says production would refuse it."""
    given = "our-shared-dev-secret-key-0123456789"
    (tmp_path / "secret_key").write_text("f" * 64)  # an instance key from an earlier start
    with caplog.at_level(logging.WARNING, logger="core.config"):
        assert load_config(tmp_path, {"APP_ENV": env, "SECRET_KEY": given})["SECRET_KEY"] \
            == given
    assert "would refuse it" in caplog.text


@pytest.mark.parametrize("value", ["NOTSET", "WARN", "FATAL", "verbose"])
def test_log_level_takes_only_the_five_levels_the_readme_lists(tmp_path, value):
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_config(tmp_path, {"SECRET_KEY": STRONG, "LOG_LEVEL": value})


@pytest.mark.parametrize("zone", ["UTC", "America/Chicago", " Pacific/Honolulu "])
def test_a_time_zone_the_zone_database_knows_is_taken(tmp_path, zone):
    config = load_config(tmp_path, {"SECRET_KEY": STRONG, "TIME_ZONE": zone})
    assert config["TIME_ZONE"] == zone.strip()
