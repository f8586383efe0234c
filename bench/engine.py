"""Time the consent engine alone: `consent.policy.decide` for a non-custodian, query included.

Run by bench/run (`--only engine`) against the bench database with the service's own
configuration (DATABASE_URL, SECRET_KEY, APP_ENV from the environment):

    python bench/engine.py --family-id ID --organization-id PROVIDER_ID

Prints one JSON document (median and p99 ms, queries per call); progress goes to stderr.
"""

import argparse
import time
import uuid
from types import SimpleNamespace

from common import emit, log, percentiles

MEDIAN_TARGET_MS = 1.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family-id", type=uuid.UUID, required=True)
    p.add_argument("--organization-id", type=uuid.UUID, required=True, help="the reader")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--purpose", default="referral")
    args = p.parse_args()

    import sqlalchemy as sa
    from sqlalchemy import event

    from app import create_app
    from consent.categories import FAMILY_CATEGORIES
    from consent.models import Consent
    from consent.policy import decide
    from core.db import db
    from core.time import now
    from families.models import Family

    app = create_app()
    with app.app_context():
        row = db.session.get(Family, args.family_id)
        if row is None:
            raise SystemExit(f"no family {args.family_id}")
        # The engine reads only these two attributes; a plain object keeps the ORM's
        # identity map from serving the family between calls.
        family = SimpleNamespace(id=row.id, custodian_organization_id=row.custodian_organization_id)
        consents = db.session.scalar(
            sa.select(sa.func.count()).select_from(Consent).where(Consent.family_id == family.id)
        )

        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(1))

        def call():
            return decide(
                actor_organization_id=args.organization_id,
                family=family,
                purpose=args.purpose,
                categories=FAMILY_CATEGORIES,
                at=now(),
            )

        samples, decision = [], None
        for n in range(args.warmup + args.calls):
            # A request starts with an empty session: loaded consents must not be reused.
            db.session.expunge_all()
            started = time.perf_counter()
            decision = call()
            elapsed = time.perf_counter() - started
            if n >= args.warmup:
                samples.append(elapsed * 1000)
        queries = len(statements) / (args.warmup + args.calls)
        db.session.rollback()

    stats = percentiles(samples)
    log(f"decide: median {stats['p50']:.3f} ms, p99 {stats['p99']:.3f} ms over {args.calls} calls")
    errors = []
    if decision.reason != "consent" or set(decision.permitted) != set(FAMILY_CATEGORIES):
        errors.append(
            f"unexpected decision: {decision.reason}, permitted {sorted(decision.permitted)}"
        )
    emit(
        {
            "figures": [
                {
                    "measure": f"decide(), family with {consents} consents: median",
                    "figure": f"{stats['p50']:.3f} ms",
                    "target": f"< {MEDIAN_TARGET_MS:g} ms",
                    "pass": stats["p50"] < MEDIAN_TARGET_MS,
                },
                {
                    "measure": "decide(): p99",
                    "figure": f"{stats['p99']:.3f} ms",
                    "target": None,
                    "pass": None,
                },
                {
                    "measure": "decide(): SQL statements per call",
                    "figure": f"{queries:g}",
                    "target": None,
                    "pass": None,
                },
            ],
            "errors": errors,
            "details": {
                "calls": args.calls,
                "warmup": args.warmup,
                "consents_of_family": consents,
                "latency_ms": stats,
                "statements_per_call": queries,
                "decision": {
                    "reason": decision.reason,
                    "permitted": sorted(decision.permitted),
                    "consent_ids": [str(c) for c in decision.consent_ids],
                },
            },
        }
    )


if __name__ == "__main__":
    main()
