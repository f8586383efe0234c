"""The application factory, and the module-level `app` for gunicorn and `flask --app app`."""

import logging
import sys
from pathlib import Path
from typing import NoReturn

from flasgger import Swagger
from flask import Flask
from flask.cli import FlaskGroup
from flask_migrate import Migrate

from core import health, limits, web
from core.cli import db_cli
from core.config import ConfigError, load_config
from core.db import db
from core.errors import register_error_handlers
from core.health import migration_heads

ROOT = Path(__file__).resolve().parent
MIGRATIONS = ROOT / "migrations"

migrate = Migrate(compare_type=True, render_as_batch=True)


def create_app(config: dict | None = None) -> Flask:
    """Build the service. `config` overrides what the environment says (tests)."""
    app = Flask(__name__, instance_path=str(ROOT / "instance"))
    instance = Path(app.instance_path)
    instance.mkdir(mode=0o700, exist_ok=True)
    if instance.stat().st_mode & 0o077:  # an older checkout's: it holds keys and the database
        instance.chmod(0o700)
    app.config.update(load_config(Path(app.instance_path)))
    app.config.update(config or {})
    app.json.sort_keys = False  # keep the contract's field order
    logging.basicConfig(level=app.config["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # authlib's debug lines print every token it issues ("Issue token {...}") and the client
    # ids it is sent, a secret sent in their place included: logs must hold no credential at
    # any LOG_LEVEL, so authlib never logs below INFO. Nor below LOG_LEVEL: the root's
    # handlers write whatever a logger of its own level passes them.
    logging.getLogger("authlib").setLevel(
        max(logging.INFO, logging.getLevelNamesMapping()[app.config["LOG_LEVEL"]]))

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    app.cli.add_command(db_cli)  # in place of Flask-Migrate's own `db`: upgrade prints JSON
    app.extensions["migration_heads"] = migration_heads(MIGRATIONS)
    web.init_app(app)
    limits.init_app(app)
    register_error_handlers(app)

    _register_domains(app)
    _register_openapi(app)
    return app


def _register_domains(app: Flask) -> None:
    from audit import boundary as audit_boundary
    from audit.cli import audit_cli
    from audit.routes import bp as audit_bp
    from auth import server as oauth
    from auth.cli import client_cli
    from auth.routes import bp as auth_bp
    from consent.models import Consent
    from consent.routes import bp as consent_bp
    from demo import demo_cli
    from families.models import Family
    from families.routes import bp as families_bp
    from organizations.cli import org_cli
    from organizations.routes import bp as organizations_bp
    from referrals.cli import referrals_cli
    from referrals.models import Referral
    from referrals.routes import bp as referrals_bp

    audit_boundary.init_app(app, families_named_by={
        "family_id": Family.id, "referral_id": Referral.family_id,
        "consent_id": Consent.family_id})
    oauth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(organizations_bp)
    app.register_blueprint(families_bp)
    app.register_blueprint(consent_bp)
    app.register_blueprint(referrals_bp)
    app.register_blueprint(audit_bp)
    for group in (org_cli, client_cli, demo_cli, audit_cli, referrals_cli):
        app.cli.add_command(group)


def _register_openapi(app: Flask) -> None:
    from openapi.cli import openapi_cli
    from openapi.spec import build_spec

    app.cli.add_command(openapi_cli)
    Swagger(app, template=build_spec(app), merge=False, config={
        "openapi": "3.0.3",
        "headers": [],
        "specs": [{"endpoint": "openapi", "route": "/openapi.json",
                   "rule_filter": lambda rule: False, "model_filter": lambda tag: False}],
        "static_url_path": "/flasgger_static",
        "swagger_ui": True,
        "specs_route": "/apidocs/",
    })


def configuration_error_exit(error: ConfigError) -> NoReturn:
    """Stop the process on a configuration error: the message alone on standard error, no
    traceback.

    In a gunicorn worker the exit status is gunicorn's "App failed to load" (4), which halts
    the master; on any other status it boots another worker, for ever.
    """
    message = f"configuration error: {error}"
    arbiter = sys.modules.get("gunicorn.arbiter")
    if arbiter is not None:
        print(message, file=sys.stderr, flush=True)
        sys.exit(arbiter.Arbiter.APP_LOAD_ERROR)
    sys.exit(message)


def _create_app_or_exit(config: dict | None = None) -> Flask:
    try:
        return create_app(config)
    except ConfigError as error:
        configuration_error_exit(error)


def __getattr__(name):
    # Built on first use, so importing create_app (tests) does not demand production settings.
    if name == "app":
        application = _create_app_or_exit()
        globals()["app"] = application
        return application
    raise AttributeError(name)


def main() -> None:
    """The `imh-referral` console script: the same commands as `flask --app app`."""
    FlaskGroup(create_app=_create_app_or_exit)()
