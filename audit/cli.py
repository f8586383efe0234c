"""`flask audit verify|checkpoint`: operators and auditors check the trail from a shell."""

import sys

import click
from flask.cli import AppGroup

from audit import checkpoints
from audit.chain import verify
from audit.schemas import CheckpointSchema
from audit.sealer import seal_committed
from core.cli import echo_json
from core.db import db, transaction

audit_cli = AppGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
@click.option("--from-seq", type=click.IntRange(min=1, max=2**63 - 1), default=None)
@click.option("--to-seq", type=click.IntRange(min=1, max=2**63 - 1), default=None)
def verify_command(from_seq, to_seq):
    """Seal what waits, recompute the chain and check the newest checkpoint; exit 1 when
    either fails."""
    seal_committed()
    verdict = verify(db.session, from_seq, to_seq).as_dict()
    latest = checkpoints.latest_checkpoint(db.session)
    if verdict["valid"] and latest is not None:
        kept = checkpoints.extends(db.session, CheckpointSchema().dump(latest) | {
            "recorded_at": latest.recorded_at})
        verdict["checkpoint"] = {"seq": latest.seq, **kept}
        if not kept["valid"]:
            verdict.update(valid=False, first_bad_seq=latest.seq, reason=kept["reason"])
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
        except LookupError as error:
            raise click.ClickException(str(error)) from None
    echo_json(CheckpointSchema().dump(checkpoint))
