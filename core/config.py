"""Configuration read from the environment once, at start."""

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

#: The secret shipped in examples; a production start refuses it.
DEFAULT_SECRET_KEYS = frozenset({"", "change-me", "dev", "development", "secret"})
ENVIRONMENTS = ("production", "development", "test")


class ConfigError(RuntimeError):
    """The environment does not describe a configuration the service may start with."""


def _int(environ, name, default, minimum=1, maximum=None):
    """An integer setting within its bounds (beyond them a request would overflow a date)."""
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from error
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}")
    return value


_DAY = 24 * 60 * 60
_YEAR = 365 * _DAY


def _development_secret(instance_path: Path) -> str:
    """Keep one generated secret per instance folder so cursors survive a restart."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.write_text(value)
    path.chmod(0o600)
    log.warning("SECRET_KEY is unset; generated one into %s (development only)", path)
    return value


def load_config(instance_path: Path, environ=None) -> dict:
    """Build the Flask configuration from environment variables.

    Raises ConfigError when a production start lacks a real SECRET_KEY or a value is malformed.
    """
    environ = os.environ if environ is None else environ
    env = environ.get("APP_ENV", "production")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    secret_key = environ.get("SECRET_KEY", "")
    if secret_key in DEFAULT_SECRET_KEYS or len(secret_key) < 32:
        if env == "production":
            raise ConfigError(
                "SECRET_KEY must be set to a random value of at least 32 characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        secret_key = _development_secret(instance_path)

    database_url = environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'imh.sqlite3'}"
    # PostgreSQL: the longest one statement may run, and a transaction may sit idle, before
    # the server ends it (milliseconds; 0: never), so a stuck request cannot hold locks long.
    statement_timeout = _int(environ, "DATABASE_STATEMENT_TIMEOUT_MS", 15000, minimum=0,
                             maximum=2**31 - 1)
    return {
        "APP_ENV": env,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(database_url, statement_timeout),
        "MAX_CONTENT_LENGTH": _int(environ, "MAX_CONTENT_LENGTH", 64 * 1024, maximum=2**30),
        "TOKEN_LIFETIME": _int(environ, "TOKEN_LIFETIME", 3600, maximum=_YEAR),
        "OAUTH_ISSUER": environ.get("OAUTH_ISSUER", "").rstrip("/") or None,
        "REDIS_URL": environ.get("REDIS_URL") or None,
        "LOG_LEVEL": environ.get("LOG_LEVEL", "INFO").upper(),
        "AUDIT_SIGNING_KEY": environ.get("AUDIT_SIGNING_KEY") or None,
        #: Public keys the service signed checkpoints with before AUDIT_SIGNING_KEY changed.
        "AUDIT_PREVIOUS_PUBLIC_KEYS": environ.get("AUDIT_PREVIOUS_PUBLIC_KEYS") or None,
        #: The longest a consent may run, in days.
        "CONSENT_MAX_DAYS": _int(environ, "CONSENT_MAX_DAYS", 366, maximum=3660),
        #: Seconds between scheduled checkpoints, made by the first audited commit after it.
        "AUDIT_CHECKPOINT_INTERVAL": _int(environ, "AUDIT_CHECKPOINT_INTERVAL", 3600, minimum=0,
                                          maximum=_YEAR),
        #: PostgreSQL: milliseconds between each worker's background sealing of committed
        #: audit events into the chain (0: only readers of the trail seal; audit/sealer.py).
        "AUDIT_SEAL_INTERVAL_MS": _int(environ, "AUDIT_SEAL_INTERVAL_MS", 200, minimum=0,
                                       maximum=_DAY * 1000),
        #: Per client: every API call, and the OAuth endpoints (issue, introspect, revoke).
        "RATE_LIMIT_API": environ.get("RATE_LIMIT_API", "1200 per minute"),
        # API.md names it RATE_LIMIT_TOKEN; RATE_LIMIT_OAUTH is its name before 2026-12-06.
        "RATE_LIMIT_TOKEN": environ.get("RATE_LIMIT_TOKEN")
        or environ.get("RATE_LIMIT_OAUTH", "120 per minute"),
    }


def _engine_options(database_url: str, statement_timeout: int) -> dict:
    # hide_parameters: a database error's message must never carry family data to a log.
    options = {"pool_pre_ping": True, "hide_parameters": True}
    if database_url.startswith(("postgresql:", "postgresql+", "postgres:")):
        # Said, not assumed from the server's default: each statement must see what committed
        # before it (the audit sealer's work, a revocation), and nothing here retries
        # serialization failures.
        options["isolation_level"] = "READ COMMITTED"
        options["connect_args"] = {
            "options": f"-c statement_timeout={statement_timeout} "
                       f"-c idle_in_transaction_session_timeout={statement_timeout}"}
    return options


def normalize_database_url(url: str) -> str:
    """Serve `postgresql://` and `postgres://` URLs through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
