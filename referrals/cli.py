"""`flask referrals hold-expired`: the scheduled sweep for consents that ended by expiry."""


from core.cli import OperatorGroup, echo_json
from core.db import transaction
from referrals import service

referrals_cli = OperatorGroup("referrals", help="Referrals.")


@referrals_cli.command("hold-expired")
def hold_expired_command():
    """Put on hold every open referral whose consents no longer cover it (run it from cron;
    each referral is also checked at its next access). One transaction per batch, so a busy
    referral delays none of the others."""
    held, after = 0, None
    while True:
        with transaction():
            count, after = service.hold_unsupported(after=after)
        held += count
        if after is None:
            break
    echo_json({"held": held})
