"""Refusals recorded after the rollback in a fresh transaction; checkpoints and sealing on a
schedule."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from audit import sealer
from audit.chain import ChainCannotGoOn
from audit.checkpoints import checkpoint_if_due, load_previous_public_keys, load_signing_key
from audit.recorder import record, record_told
from core.db import db
from core.time import now
from core.web import family_concerned, on_commit, on_rollback

_METHOD_ACTIONS = {"GET": "read", "HEAD": "read", "POST": "create", "PATCH": "update",
                   "PUT": "update", "DELETE": "revoke"}
#: Statuses that refuse an authenticated actor's access or action: recorded as `deny` (so is
#: any refusal whose Problem says what to record, and a 422 about a family the service had
#: found: an action on its record refused). Anonymous 401s are not recorded (strangers could
#: grow the chain); the application log has them. A Problem's `audit` may name in `told` the
#: consent decision under which its answer tells a fact of the family: recorded as a read.
_REFUSALS = (403, 404, 409, 412, 428)


def audited_as(action: str):
    """Name the audit action of a view whose method does not say it (a POST that moves)."""

    def decorator(view):
        view.audit_action = action
        return view

    return decorator


def _action_of_request() -> str:
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, "audit_action", None) or _METHOD_ACTIONS.get(request.method, "read")


def _resource_of_request() -> tuple[str, str | None]:
    for name, value in (request.view_args or {}).items():
        if name.endswith("_id"):
            return name[:-3], str(value)
        if name == "seq":
            return "audit_event", str(value)
    return _BLUEPRINT_RESOURCES.get(request.blueprint, "api"), None


#: What a request to a blueprint's route without an id is about.
_BLUEPRINT_RESOURCES = {"families": "family", "referrals": "referral", "consent": "consent",
                        "organizations": "organization", "audit": "audit_event",
                        "auth": "access_token"}


def _family_of_request():
    """The family a refused request concerns: the one the service found (`concerns_family`),
    or, for a request refused before any look (a missing scope), the one its path names, or
    the `family_id` of its JSON body, when it exists. For the auditors' family filter: the
    caller learns nothing from it."""
    found = family_concerned()
    if found is not None:
        return found
    named_by = current_app.extensions["audit_families_named_by"]
    for name, value in (request.view_args or {}).items():
        if name in named_by:
            return _family_named(named_by[name], value)
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except HTTPException:  # a body over the size limit: not read, and no family named
        body = None
    if isinstance(body, dict) and isinstance(body.get("family_id"), str):
        try:
            return _family_named(named_by["family_id"], uuid.UUID(body["family_id"]))
        except ValueError:
            return None
    return None


def _family_named(column, value: uuid.UUID):
    return db.session.scalar(sa.select(column).where(column.table.c.id == value))


def _record_refusal(response) -> None:
    denial = g.pop("audit_denial", None)
    if denial is None:
        actor = g.get("actor")
        problem = g.get("problem")
        if actor is None or not (response.status_code in _REFUSALS
                                 or (problem and problem.audit)
                                 or (response.status_code == 422
                                     and family_concerned() is not None)):
            return
        resource_type, resource_id = _resource_of_request()
        denial = {
            "action": _action_of_request(),
            "reason": problem.slug.replace("-", "_") if problem else "refused",
            "resource_type": resource_type,
            "resource_id": resource_id,
            "actor": actor,
            "family_id": _family_of_request(),
            **(problem.audit if problem else {}),
        }
    told = denial.pop("told", None)
    record(outcome="deny", **denial)
    # The refusal itself told the caller something of the family under consent (a grantor
    # without authority, a date before the birth): a disclosure to account for.
    record_told(told, family_id=denial.get("family_id"), actor=denial.get("actor"))
    db.session.commit()


def _checkpoint_on_schedule() -> None:
    """At most once per interval per process, checkpoint the head if no worker has lately."""
    interval = current_app.config["AUDIT_CHECKPOINT_INTERVAL"]
    state = current_app.extensions["audit_schedule"]
    at = now()
    if not interval or at < state["next_look"]:
        return
    state["next_look"] = at + timedelta(seconds=interval)
    try:
        checkpoint_if_due(db.session, timedelta(seconds=interval))
    except ChainCannotGoOn:
        # Not signed as if the chain could go on; the sealer logged why, verification names it.
        db.session.rollback()
        return
    db.session.commit()


#: The resource type of each collection a creating POST's Location names.
_COLLECTIONS = {"families": "family", "consents": "consent", "referrals": "referral",
                "notes": "referral_note"}


def _record_replay(location: str | None, body: str) -> None:
    """A replayed creation shows the object again to its client: one `read` event of it,
    named by its `Location`, or else by the replayed body's `id` in the request's collection
    (a note has no address of its own)."""
    if location:
        collection, resource_id = ("", *location.rstrip("/").split("/"))[-2:]
    else:
        collection = request.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            resource_id = json.loads(body).get("id")
        except (ValueError, AttributeError):
            resource_id = None
    record(action="read", outcome="permit", reason="idempotent_replay",
           resource_type=_COLLECTIONS.get(collection, "api"), resource_id=resource_id or None,
           family_id=family_concerned(), actor=g.get("actor"))


def init_app(app: Flask, *, families_named_by: dict) -> None:
    """Load the checkpoint signing key, record refusals after their rollback, checkpoint on
    the schedule after commits, and seal in the background (PostgreSQL).

    `families_named_by`: for each id a path may hold (`family_id`, `referral_id`, ...), the
    column of its table that holds its family's id (see `_family_of_request`)."""
    app.extensions["audit_families_named_by"] = families_named_by
    app.extensions["audit_signing_key"] = load_signing_key(
        app.config.get("AUDIT_SIGNING_KEY"), Path(app.instance_path))
    app.extensions["audit_previous_keys"] = load_previous_public_keys(
        app.config.get("AUDIT_PREVIOUS_PUBLIC_KEYS"))
    app.extensions["audit_schedule"] = {"next_look": datetime.min.replace(tzinfo=UTC)}
    on_rollback(app, _record_refusal)
    on_commit(app, _checkpoint_on_schedule)
    app.extensions["idempotent_replay"] = _record_replay
    sealer.init_app(app)
