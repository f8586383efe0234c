"""Idempotency-Key on creating POSTs: a retry returns the first answer instead of a second object.

Keys are stored in the database, in the request's own transaction, so they hold across
workers, hosts and restarts; a key belongs to one client, and lives 24 hours.
"""

import functools
import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, g, request
from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db
from core.errors import Problem, validation_problem
from core.ids import new_id
from core.sqltypes import JSONDocument
from core.time import now
from core.web import concerns_family, family_concerned, json_body, require_json

LIFETIME = timedelta(hours=24)
#: Matched whole (`fullmatch`): `$` alone would let a final line break through. No comma: two
#: Idempotency-Key lines reach the service joined by one (RFC 9110 5.3), and were taken for
#: one key that a retry sending either would not find.
_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,255}")
#: Response headers replayed with the stored body.
_REPLAYED_HEADERS = ("Location", "ETag")


class IdempotencyKey(db.Model):
    """The first answer to a client's creating request under a key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("client_id", "key"),
                      sa.Index("ix_idempotency_keys_created_at", "created_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    #: SHA-256 of the method, the path and the body's canonical JSON (`_request_hash`).
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSONDocument)
    created_at: Mapped[datetime]
    #: The family the first request concerned, which a replay's audit event names.
    family_id: Mapped[uuid.UUID | None]


def _request_hash() -> str:
    """The request's fingerprint: its method, path and JSON body in one canonical form
    (members sorted, no whitespace, characters unescaped), so a retry that serializes the
    same body again (another member order, pretty-printed, `\\u00e9` for `é`) is the same
    request (RFC 8259: neither order nor whitespace means anything).

    Raises what the view would for the body (400, 413, 415): a replay must not answer a body
    the view itself would refuse."""
    request.get_data(cache=True)  # kept for the view, which reads the body again
    canonical = json.dumps(json_body(), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return _digest(canonical.encode())


def _raw_request_hash() -> str:
    """The fingerprint keys were stored with before `_request_hash` (the body's bytes as
    sent): a retry of such a key within its 24 hours still matches. Only the same bytes give
    it, which parse to the same body: it never lets another body through. It can go once no
    key stored before the canonical fingerprint is less than 24 hours old."""
    return _digest(request.get_data(cache=True))


def _digest(body: bytes) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def idempotent(view=None, *, reread=None):
    """Honour `Idempotency-Key` on a creating POST of an authenticated client.

    With `reread(resource_id) -> response`, the first answer's body is not stored: a replay
    renders the created object again as a read would now, so information the client may no
    longer see is never replayed from storage.
    """
    if view is None:
        return functools.partial(idempotent, reread=reread)

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        # Checked before the key is looked up: a replay must not answer a body the view
        # itself would refuse.
        require_json()
        if not _KEY.fullmatch(key):
            raise validation_problem({"Idempotency-Key": [
                "One key: 1 to 255 visible ASCII characters but the comma"]},
                "The Idempotency-Key is not valid")
        client_id = g.actor.client_id
        fingerprint = _request_hash()
        stored = _stored(client_id, key)
        if stored is not None:
            return _answer_again(stored, fingerprint, reread)
        # Keys older than a day are free again, and their stored answers are not kept.
        db.session.execute(sa.delete(IdempotencyKey).where(
            IdempotencyKey.client_id == client_id, IdempotencyKey.created_at <= now() - LIFETIME))
        # The key is claimed before the work: a second request under it, arriving meanwhile,
        # waits on the claim (PostgreSQL holds its insert until this transaction ends), then
        # answers as a retry would. A failed request's rollback frees the key.
        claim = IdempotencyKey(id=str(new_id()), client_id=client_id, key=key,
                               request_hash=fingerprint, status=0, body="", headers={},
                               created_at=now())
        try:
            with db.session.begin_nested():
                db.session.add(claim)
        except sa.exc.IntegrityError:
            stored = _stored(client_id, key)
            if stored is None:  # the other request is gone again: the client may retry
                raise Problem("conflict", "Another request with this Idempotency-Key was "
                                          "under way; retry it") from None
            return _answer_again(stored, fingerprint, reread)
        response = view(*args, **kwargs)
        if 200 <= response.status_code < 300:
            claim.status = response.status_code
            claim.body = "" if reread is not None else response.get_data(as_text=True)
            claim.headers = {h: response.headers[h] for h in _REPLAYED_HEADERS
                             if h in response.headers}
            claim.family_id = family_concerned()
        else:  # only a success is answered again (an error rolls the claim back anyway)
            db.session.delete(claim)
        return response

    wrapped.idempotent = True
    wrapped.rereads = reread is not None
    return wrapped


def _stored(client_id: str, key: str) -> IdempotencyKey | None:
    """The client's answer under this key, when it is less than a day old."""
    stored = db.session.scalar(sa.select(IdempotencyKey).where(
        IdempotencyKey.client_id == client_id, IdempotencyKey.key == key))
    return stored if stored is not None and stored.created_at > now() - LIFETIME else None


def _answer_again(stored: IdempotencyKey, fingerprint: str, reread):
    """The first answer again, or 422 when the key came with another request."""
    if stored.request_hash != fingerprint and stored.request_hash != _raw_request_hash():
        raise Problem("idempotency-key-reused",
                      "This Idempotency-Key was used with another request body or path",
                      errors={"Idempotency-Key": ["Already used with another request"]})
    if reread is not None:
        return _reread(stored, reread)
    concerns_family(stored.family_id)
    on_replay = current_app.extensions.get("idempotent_replay")
    if on_replay:  # the replayed body shows the object again: record that look
        on_replay(stored.headers.get("Location"), stored.body)
    return _replay(stored)


def _reread(stored: IdempotencyKey, reread):
    resource_id = stored.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
    response = reread(resource_id)
    response.status_code = stored.status
    if "Location" in stored.headers:
        response.headers["Location"] = stored.headers["Location"]
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _replay(stored: IdempotencyKey):
    response = current_app.response_class(stored.body, status=stored.status,
                                          mimetype="application/json")
    response.headers.update(stored.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response
