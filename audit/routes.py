"""The auditors' HTTP surface."""

from flask import Blueprint, current_app, stream_with_context

from audit import service
from audit.boundary import audited_as
from audit.schemas import (
    AuditEventPageSchema,
    AuditEventQuery,
    AuditEventSchema,
    CheckpointInputSchema,
    CheckpointSchema,
    CheckpointVerdictSchema,
    ExportQuery,
    VerdictSchema,
    VerifyQuery,
)
from auth.protect import current_actor, require_scope
from core.docs import operation
from core.web import load_body, load_query, read_only, respond

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")
TAGS = ["Audit"]


@bp.get("/events")
@require_scope("audit:read")
@audited_as("search")
@operation(summary="Search the audit trail", tags=TAGS, query=AuditEventQuery,
           responses={200: AuditEventPageSchema})
def list_events():
    """Events matching every given filter, newest first, with keyset pagination. `since` is
    inclusive, `until` exclusive."""
    args = load_query(AuditEventQuery)
    page = service.search_events(current_actor(), **args)
    return respond(AuditEventPageSchema, page)


@bp.get("/events/<bigint:seq>")
@require_scope("audit:read")
@operation(summary="Read one audit event", tags=TAGS, responses={200: AuditEventSchema})
def get_event(seq: int):
    """The event at position `seq` of the chain."""
    return respond(AuditEventSchema, service.get_event(current_actor(), seq))


@bp.get("/verify")
@require_scope("audit:read")
@operation(summary="Verify the hash chain", tags=TAGS, query=VerifyQuery,
           responses={200: VerdictSchema})
@read_only
def verify():
    """Recompute every hash over the whole log, or `from_seq` to `to_seq`, and check every
    checkpoint the service stored in that range (its signature, and the log still hashing to
    it: a rewrite that re-hashed everything after it is caught there); name the first broken
    event and why. A range starting after 1 trusts the event just before it; a range reaching
    past the newest event is 422 (the log does not hold it)."""
    args = load_query(VerifyQuery)
    return respond(VerdictSchema, service.verify_log(**args))


@bp.get("/checkpoints/latest")
@require_scope("audit:read")
@operation(summary="The newest signed checkpoint", tags=TAGS, errors=(404,),
           responses={200: CheckpointSchema})
@read_only
def latest_checkpoint():
    """Ed25519 signature over the chain's (seq, hash, time); keep it to detect any later
    rewrite of history. 404 until the first checkpoint is made."""
    return respond(CheckpointSchema, service.latest_checkpoint())


@bp.post("/checkpoints/verify")
@require_scope("audit:read")
@operation(summary="Check that the log still extends a kept checkpoint", tags=TAGS,
           body=CheckpointInputSchema, responses={200: CheckpointVerdictSchema})
@read_only
def verify_checkpoint():
    """422 when the checkpoint's signature does not verify or the key is not the service's;
    else valid only when today's log still hashes to it at its `seq`."""
    checkpoint = load_body(CheckpointInputSchema)
    return respond(CheckpointVerdictSchema, service.verify_checkpoint(checkpoint))


@bp.get("/export")
@require_scope("audit:read")
@audited_as("export")
@operation(summary="Export events as NDJSON", tags=TAGS, query=ExportQuery,
           responses={200: ("application/x-ndjson", {"type": "string"})})
def export():
    """The stretch of the chain from the first event recorded in [since, until) (at most 31
    days) to the last, oldest first, one JSON object a line (`application/x-ndjson`),
    streamed. It has no gap, so it can be checked away from the service line by line (README,
    Verification): an event chained inside it but recorded just outside the range (its
    request committed late) is in it too."""
    args = load_query(ExportQuery)
    lines = service.export_events(current_actor(), **args)
    return current_app.response_class(stream_with_context(lines),
                                      mimetype="application/x-ndjson")
