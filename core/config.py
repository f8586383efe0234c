"""Configuration read from the environment once, at start."""

import logging
import os
import secrets
from pathlib import Path
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg.conninfo
import sqlalchemy as sa

from core.time import DEFAULT_TIME_ZONE

log = logging.getLogger(__name__)

#: The secret shipped in examples; a production start refuses it.
DEFAULT_SECRET_KEYS = frozenset({"", "change-me", "dev", "development", "secret"})
#: Words of example and hand-made secrets: a SECRET_KEY holding one (any case) is not random.
#: Six letters or more, so a random key holds one by chance less than once in a million.
SECRET_KEY_PLACEHOLDERS = ("change", "secret", "password", "example", "default", "replace",
                           "placeholder", "insecure", "development")
#: Fewer different characters than this is a pattern, not a random key ("a" * 32). A random
#: hex key of 32 characters has fewer about once in 12,000; one of 64, practically never.
SECRET_KEY_MIN_DISTINCT = 10
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


def _url_parts(value: str) -> SplitResult | None:
    """The parts of a URL, or None when it is not one (a port that is not a number too)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return None
    return parts


def _issuer(raw: str, env: str) -> str | None:
    """OAUTH_ISSUER without its trailing `/`, or None when unset.

    It is the base of every URL of the RFC 8414 metadata, so it must be an absolute URL with
    a host and no query, fragment or credentials (RFC 8414 2), and no path: the metadata is
    served at the root's well-known address only (RFC 8414 3.1); https in production, where
    OAuth 2 requires TLS, and http too in development and tests.
    """
    if not raw:
        return None
    value = raw.rstrip("/")
    schemes = ("https",) if env == "production" else ("https", "http")
    parts = _url_parts(value)
    if (parts is None or parts.scheme not in schemes or not parts.hostname
            or "@" in parts.netloc or any(c in value for c in "?#") or parts.path
            or any(c.isspace() or not c.isprintable() for c in value)):
        raise ConfigError(
            f"OAUTH_ISSUER must be an absolute {' or '.join(schemes)} URL with a host and no "
            "path, query, fragment or credentials, such as https://imh.example.org (the "
            "metadata is served at its root, RFC 8414 3)")
    return value


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
    if not secret_key and env != "production":
        secret_key = _development_secret(instance_path)
    elif not _looks_random(secret_key):
        if env == "production":
            raise ConfigError(
                "SECRET_KEY must be set to a random value of at least 32 characters, with at "
                f"least {SECRET_KEY_MIN_DISTINCT} different ones and no placeholder word such "
                "as 'change' or 'secret' (e.g. `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`)"
            )
        # Kept as given (several hosts may share it), but said: it would not start production.
        log.warning("SECRET_KEY does not look random; a production start would refuse it")

    database_url = _database_url(
        environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'imh.sqlite3'}")
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
        "OAUTH_ISSUER": _issuer(environ.get("OAUTH_ISSUER", ""), env),
        "REDIS_URL": _redis_url(environ.get("REDIS_URL") or None),
        #: Reverse proxies in front whose X-Forwarded-For/-Proto are believed (core/web.py).
        "TRUSTED_PROXIES": _int(environ, "TRUSTED_PROXIES", 0, minimum=0, maximum=10),
        "LOG_LEVEL": _log_level(environ.get("LOG_LEVEL") or "INFO"),
        "AUDIT_SIGNING_KEY": environ.get("AUDIT_SIGNING_KEY") or None,
        #: Public keys the service signed checkpoints with before AUDIT_SIGNING_KEY changed.
        "AUDIT_PREVIOUS_PUBLIC_KEYS": environ.get("AUDIT_PREVIOUS_PUBLIC_KEYS") or None,
        #: The IANA time zone the service counts days in: Part C's 7 and 45 days (from the
        #: day a referral was delivered), which day it was received, whether a date is in
        #: the future.
        "TIME_ZONE": _time_zone(environ.get("TIME_ZONE") or DEFAULT_TIME_ZONE),
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
        #: Empty is the default, as for every other setting.
        "RATE_LIMIT_API": environ.get("RATE_LIMIT_API") or "1200 per minute",
        # API.md names it RATE_LIMIT_TOKEN; RATE_LIMIT_OAUTH is its name before 2026-12-06.
        "RATE_LIMIT_TOKEN": environ.get("RATE_LIMIT_TOKEN")
        or environ.get("RATE_LIMIT_OAUTH") or "120 per minute",
    }


def _looks_random(secret_key: str) -> bool:
    """Whether a SECRET_KEY could be random: at least 32 characters, at least
    SECRET_KEY_MIN_DISTINCT different ones, and no placeholder word. A cheap screen for the
    keys people type or paste, not a measure of entropy."""
    folded = secret_key.casefold()
    return (secret_key not in DEFAULT_SECRET_KEYS and len(secret_key) >= 32
            and len(set(secret_key)) >= SECRET_KEY_MIN_DISTINCT
            and not any(word in folded for word in SECRET_KEY_PLACEHOLDERS))


#: The databases the service runs on, as (backend, driver) of a normalized URL.
_DATABASES = {("sqlite", ""), ("sqlite", "pysqlite"), ("postgresql", "psycopg")}


def _database_url(raw: str) -> str:
    """DATABASE_URL, normalized; a relative SQLite path made absolute from the working
    directory. Raises ConfigError, without the value (it may hold a password), for a URL
    SQLAlchemy cannot read, a database or driver not served here, or an SQLite database in
    memory."""
    url = normalize_database_url(raw)
    try:
        parsed = sa.engine.make_url(url)
        backend, _, driver = parsed.drivername.partition("+")
    except (sa.exc.ArgumentError, ValueError):  # not a URL; a port that is not a number
        backend = driver = None
    if (backend, driver) not in _DATABASES:
        raise ConfigError("DATABASE_URL must be sqlite:///PATH or "
                          "postgresql://USER@HOST:PORT/DATABASE (served through psycopg 3)")
    if backend == "sqlite":
        return _sqlite_file(url, parsed)
    _check_libpq_parameters(parsed.query)
    return url


#: libpq's connection parameters that take a whole number.
_LIBPQ_WHOLE_NUMBERS = ("port", "connect_timeout", "keepalives", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "tcp_user_timeout")


def _check_libpq_parameters(query) -> None:
    """A PostgreSQL URL's query is handed to libpq as connection parameters: each must be one
    (a server setting such as statement_timeout is not), given once, and those counting
    seconds or milliseconds whole numbers. Else every connection fails, and the service would
    start and answer "unreachable" for ever. Raises ConfigError naming the parameter, not its
    value."""
    for name, value in query.items():
        if not isinstance(value, str):
            raise ConfigError(f"DATABASE_URL's query names {name} more than once")
        if name in _LIBPQ_WHOLE_NUMBERS and not (value.isascii() and value.isdigit()):
            raise ConfigError(f"DATABASE_URL's {name} must be a whole number")
        try:
            psycopg.conninfo.make_conninfo("", **{name: value})
        except psycopg.ProgrammingError:
            raise ConfigError(f"DATABASE_URL's query holds {name}, which is not a libpq "
                              "connection parameter (see the README, Running on "
                              "PostgreSQL)") from None


def _sqlite_file(raw: str, url: sa.engine.URL) -> str:
    """An SQLite URL naming a file by its absolute path. Raises ConfigError for a database in
    memory: it vanishes with its connection, so `db upgrade` would migrate nothing that
    lasts, and every connection of the service would open a new, empty one."""
    path = url.database or ""
    uri = str(url.query.get("uri", "")).lower() in ("true", "1")
    if path in ("", ":memory:") or (uri and (path.startswith("file::memory:")
                                             or url.query.get("mode") == "memory")):
        raise ConfigError("DATABASE_URL must name an SQLite file (sqlite:///PATH), not a "
                          "database in memory")
    if uri or os.path.isabs(path):
        return raw
    # As any tool reads a relative path: from the working directory, not (Flask-SQLAlchemy's
    # own rule) from the application's instance folder.
    return url.set(database=os.path.abspath(path)).render_as_string(hide_password=False)


#: The `limits` storages that are Redis: any other (`memory://`, a per-process counter the
#: service avoids on purpose, alisaifee/limits#26; memcached, MongoDB) is refused.
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


def _redis_url(raw: str | None) -> str | None:
    """REDIS_URL, or None when unset. Raises ConfigError, without the value (it may hold a
    password), for one that is not a Redis URL with a numeric port."""
    if raw is None:
        return None
    parts = _url_parts(raw)
    if parts is None or parts.scheme not in _REDIS_SCHEMES:
        raise ConfigError("REDIS_URL must be a redis://HOST:PORT/DB, rediss://HOST:PORT/DB or "
                          "redis+unix:///PATH URL")
    return raw


def _time_zone(raw: str) -> str:
    """TIME_ZONE as an IANA time zone name the zone database knows. Raises ConfigError for
    another."""
    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"TIME_ZONE must be an IANA time zone such as America/Detroit or "
                          f"UTC, got {raw!r}") from None
    return raw.strip()


def _log_level(raw: str) -> str:
    """LOG_LEVEL as a level name logging knows. Raises ConfigError for another."""
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return level


def _engine_options(database_url: str, statement_timeout: int) -> dict:
    # hide_parameters: a database error's message must never carry family data to a log.
    options = {"pool_pre_ping": True, "hide_parameters": True}
    if database_url.startswith(("postgresql:", "postgresql+", "postgres:")):
        # Said, not assumed from the server's default: each statement must see what committed
        # before it (the audit sealer's work, a revocation), and nothing here retries
        # serialization failures.
        options["isolation_level"] = "READ COMMITTED"
        options["connect_args"] = {
            # What the URL does not say: a host that does not answer, or a network that drops
            # everything, ends the connection (503) instead of holding the request until the
            # system's TCP gives up, many minutes later; the server-side timeouts above cannot
            # fire when nothing reaches the server.
            **{name: value for name, value in _LIBPQ_TIMEOUTS.items()
               if name not in sa.engine.make_url(database_url).query},
            "options": f"-c statement_timeout={statement_timeout} "
                       f"-c idle_in_transaction_session_timeout={statement_timeout}"}
    return options


#: libpq's connection parameters (seconds, and milliseconds for tcp_user_timeout): a connection
#: is given up after 10 s, a silent peer after 25 s of keepalives, unacknowledged data after 30 s.
_LIBPQ_TIMEOUTS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10,
                   "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 30000}


def normalize_database_url(url: str) -> str:
    """Serve `postgresql://` and `postgres://` URLs through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
