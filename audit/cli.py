"""`flask audit verify|checkpoint`: operators and auditors check the trail from a shell."""

import sys

import click

from audit import checkpoints
from audit.chain import ChainCannotGoOn
from audit.models import MAX_SEQ
from audit.schemas import CheckpointSchema
from audit.service import verify_log
from core.cli import OperatorGroup, echo_json
from core.db import begin_read_only, db, transaction
from core.errors import Problem

audit_cli = OperatorGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
@click.option("--from-seq", type=click.IntRange(min=1, max=MAX_SEQ), default=None)
@click.option("--to-seq", type=click.IntRange(min=1, max=MAX_SEQ), default=None)
def verify_command(from_seq, to_seq):
    """Seal what waits, recompute the chain and check every checkpoint in the range (the
    service's signature, and the log still hashing to it); exit 1 when either fails, 2 for a
    range that is not one (as the API's 422: exit 1 is a tamper alarm)."""
    if from_seq is not None and to_seq is not None and from_seq > to_seq:
        raise click.BadParameter("must not be before --from-seq", param_hint="--to-seq")
    begin_read_only()
    try:
        verdict = verify_log(from_seq=from_seq, to_seq=to_seq)
    except Problem as problem:
        messages = "; ".join(m for ms in (problem.errors or {}).values() for m in ms)
        raise click.UsageError(
            f"{problem.detail}: {messages}" if messages else problem.detail) from None
    db.session.rollback()
    echo_json(verdict)
    if not verdict["valid"]:
        click.echo(f"audit chain broken at seq {verdict['first_bad_seq']}: {verdict['reason']}",
                   err=True)
        sys.exit(1)


@audit_cli.command("checkpoint")
def checkpoint_command():
    """Sign the current head and print the checkpoint."""
    with transaction():
        try:
            checkpoint = checkpoints.checkpoint_now(db.session)
        except (LookupError, ChainCannotGoOn) as error:
            # A chain that cannot go on is not signed as if it could: verify it first.
            raise click.ClickException(str(error)) from None
    echo_json(CheckpointSchema().dump(checkpoint))
