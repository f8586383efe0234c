"""The audit trail at a million events: bulk-load a valid chain, then time the auditors' reads.

Run by bench/run (`--only audit_scale`) after the wrk scenarios, against the running service:

    python bench/audit_scale.py --port PORT [--events 1000000]

1. Appends `--events` events to the bench database's log in SQL, spread over 2,000 families
   (one per 500 events), 50 organizations and 60 days; one event in ten is a page of a list
   that names no one family but lists `--listed` of them in `family_ids` (so a family is
   named by ~450 events and listed by ~1,000). Each batch is one statement: a
   recursive CTE walks the batch in seq order, hashing each event with the migration's own
   `audit_event_hash` over the previous one's hash, inserts the rows into `audit_events` and
   moves `audit_chain_head`, under the head's row lock, as the sealer does (the
   trigger on `audit_events` indexes the listed families, as it does for every writer).
   Measured on this 2-core box (events/s): through `audit_pending` and the trigger of
   migration 0004 ~7k (and quadratic in the size of a transaction: every row updated the one
   head row again), a PL/pgSQL loop ~12k, the recursive CTE ~18k; so the CTE it is.
2. Times `GET /api/v1/audit/events?limit=50` filtered by family (events naming it in
   `family_id` or listing it in `family_ids`) and by organization, each at the first page and
   at a page deep in the log (a cursor signed with the service's SECRET_KEY, as
   core/pagination.py does), with an auditor token, one request at a time.
3. Times verification of the whole log: `GET /api/v1/audit/verify` and
   `flask --app app audit verify`; both must find the chain valid.

Prints one JSON document; progress goes to stderr.
"""

import argparse
import http.client
import json
import os
import time
from datetime import UTC, datetime, timedelta

import psycopg
from common import (
    HOST,
    BenchError,
    basic_auth,
    emit,
    issue_token,
    log,
    operator,
    percentiles,
    run,
    tool,
)
from itsdangerous import URLSafeSerializer

from audit.chain import HASHED_FIELDS  # the arguments of audit_event_hash, in order

PAGE = 50
P95_TARGET_MS = 20.0
VERIFY_TARGET = 100_000  # events per second
LOAD_TARGET_S = 300.0
#: The deep page's cursor sits this many events after the first bulk event.
DEEP_OFFSET = 10_000

#: Column types other than text, for the CTE's seed row: its NULLs must match the rows after.
TYPES = {
    "categories": "jsonb",
    "consent_ids": "jsonb",
    "family_id": "uuid",
    "family_ids": "jsonb",
    "id": "uuid",
    "organization_id": "uuid",
    "token_id": "uuid",
    "recorded_at": "timestamptz",
}


def event_columns(i: str, args) -> dict:
    """SQL for each stored field of bulk event number `i` (an SQL expression, from 1).

    Deterministic in `i` except for `id`: family `i mod families`; the acting organization
    (with its client and token) varies independently of the family; seven events in ten are
    consented reads, the rest creates, updates and searches, one in 17 denied. A search is a
    page of a list: no `family_id`, and `args.listed` families in `family_ids` (sorted
    lowercase strings, as audit.record stores them), spread over all the families.
    """
    actor = f"mod(({i}) * 37 + ({i}) / {args.families}, {args.organizations})"
    actions = "ARRAY['create', 'update', 'search', 'read', 'read', 'read', 'read', 'read', "
    actions += "'read', 'read']"
    action = f"({actions})[mod({i}, 10) + 1]"
    listing = f"mod({i}, 10) = 2"  # the searches
    family = (f"CASE WHEN {listing} THEN NULL "
              f"ELSE md5('family-' || mod({i}, {args.families}))::uuid END")
    # 97 is prime to any family count that is not a multiple of it: the listed are distinct.
    # Built from integers of the command line only.
    listed = (f"(SELECT jsonb_agg(f ORDER BY f COLLATE \"C\") FROM (SELECT DISTINCT "  # noqa: S608
              f"md5('family-' || mod(({i}) + j * 97, {args.families}))::uuid::text AS f "
              f"FROM generate_series(0, {args.listed - 1}) j) listed)")
    denied = f"mod({i}, 17) = 0"
    return {
        "action": action,
        "categories": '\'["contact", "identity"]\'::jsonb',
        "client_id": f"md5('client-' || {actor})::uuid::text",
        "consent_ids": f"CASE WHEN {denied} THEN '[]'::jsonb "
        f"ELSE jsonb_build_array(md5('consent-' || mod({i}, {args.families}))::uuid::text) END",
        "family_id": family,
        "family_ids": f"CASE WHEN {listing} THEN {listed} ELSE '[]'::jsonb END",
        "id": "gen_random_uuid()",
        "organization_id": f"md5('org-' || {actor})::uuid",
        "outcome": f"CASE WHEN {denied} THEN 'deny' ELSE 'permit' END",
        "purpose": f"CASE WHEN {action} = 'read' THEN 'referral' END",
        "reason": f"CASE WHEN {denied} THEN 'no_consent' ELSE 'consent' END",
        "recorded_at": f"%(t0)s::timestamptz + ({i}) * %(step)s::interval",
        "request_id": f"md5('request-' || ({i}))::uuid::text",
        "request_ip": "'10.0.0.' || (" + actor + ")",
        "request_method": f"CASE {action} WHEN 'create' THEN 'POST' WHEN 'update' THEN 'PATCH' "
        "ELSE 'GET' END",
        "request_path": f"CASE WHEN {listing} THEN '/api/v1/referrals' "
        f"ELSE '/api/v1/families/' || {family}::text END",
        "resource_id": f"{family}::text",
        "resource_type": f"CASE WHEN {listing} THEN 'referral' ELSE 'family' END",
        "token_id": f"md5('token-' || {actor})::uuid",
    }


def batch_statement(args) -> str:
    """One batch: chain events %(low)s+1..%(high)s onto the head and move the head."""
    fields = event_columns("c.i + 1", args)
    columns = list(fields)
    special = {"prev_hash": "c.hash", "seq": "c.seq + 1"}
    hash_args = ", ".join(special.get(f, f"x.{f}") for f in HASHED_FIELDS)
    seeds = ", ".join(f"NULL::{TYPES.get(c, 'text')} AS {c}" for c in columns)
    # Built from this module's constants only; the batch bounds are bound parameters.
    return f"""
WITH RECURSIVE chain AS (
    SELECT %(low)s::bigint AS i, seq, hash::text AS hash, NULL::text AS prev_hash, {seeds}
    FROM audit_chain_head WHERE id = 1
  UNION ALL
    SELECT c.i + 1, c.seq + 1, audit_event_hash({hash_args}), c.hash,
           {", ".join("x." + c for c in columns)}
    FROM chain c, LATERAL (SELECT {", ".join(f"{fields[c]} AS {c}" for c in columns)}) x
    WHERE c.i < %(high)s
), stored AS (
    INSERT INTO audit_events ({", ".join(columns)}, seq, prev_hash, hash)
    SELECT {", ".join(columns)}, seq, prev_hash, hash FROM chain WHERE i > %(low)s
    RETURNING seq, hash
)
UPDATE audit_chain_head SET seq = last.seq, hash = last.hash
FROM (SELECT seq, hash FROM stored ORDER BY seq DESC LIMIT 1) last WHERE id = 1
"""  # noqa: S608


def bulk_load(dsn: str, args) -> dict:
    """Append args.events events in batches; return the first seq and the timing."""
    statement = batch_statement(args)
    days = timedelta(days=args.days)
    params = {"t0": datetime.now(UTC) - days, "step": days / args.events}
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '600s'")
        # What waits is chained first (the auditor's organization and client, their token):
        # a sealer would otherwise append it between two batches, and the head would not be
        # where the load left it.
        while conn.execute("SELECT audit_seal_pending(2000, true)").fetchone()[0]:
            pass
        first = conn.execute("SELECT seq FROM audit_chain_head WHERE id = 1").fetchone()[0] + 1
        started = time.perf_counter()
        for low in range(0, args.events, args.batch):
            high = min(low + args.batch, args.events)
            with conn.transaction():
                # Writers wait for the head as they would for any commit; none can fork the chain.
                conn.execute("SELECT 1 FROM audit_chain_head WHERE id = 1 FOR UPDATE")
                conn.execute(statement, {**params, "low": low, "high": high})
            elapsed = time.perf_counter() - started
            log(f"audit_scale: {high:,}/{args.events:,} events ({elapsed:.1f}s)")
        seconds = time.perf_counter() - started
        head = conn.execute("SELECT seq FROM audit_chain_head WHERE id = 1").fetchone()[0]
        if head != first + args.events - 1:
            raise BenchError(f"the head is at {head}, not {first + args.events - 1}")
        # A log that grew day by day would have statistics and have been vacuumed; one that
        # jumped by a million in a minute has neither yet: the planner would guess, and
        # autovacuum, woken by the inserts, would run beside the measured pages.
        conn.execute("VACUUM (ANALYZE) audit_events")
        conn.execute("VACUUM (ANALYZE) audit_listed_families")
        listed = conn.execute("SELECT count(*) FROM audit_listed_families").fetchone()[0]
    return {"first_seq": first, "last_seq": head, "seconds": seconds, "listed_rows": listed}


#: The seq just past the oldest full page of a filter's bulk events.
OLDEST_PAGE = {
    name: f"SELECT seq FROM audit_events WHERE {name} = %s AND seq >= %s "  # noqa: S608
    "ORDER BY seq OFFSET %s LIMIT 1"
    for name in ("family_id", "organization_id")
}


def probes(dsn: str, first: int, args) -> dict:
    """A family and an organization of the bulk log, and a deep cursor position for each.

    The deep position is DEEP_OFFSET events into the bulk log, or further when needed for a
    full page of older events to lie behind it.
    """
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        middle = first + args.events // 2
        family, organization = conn.execute(
            "SELECT family_id, organization_id FROM audit_events "
            "WHERE seq >= %s AND family_id IS NOT NULL ORDER BY seq LIMIT 1", (middle,)
        ).fetchone()
        deep = {}
        for name, value in (("family_id", family), ("organization_id", organization)):
            full_page = conn.execute(OLDEST_PAGE[name], (value, first, PAGE)).fetchone()
            deep[name] = max(first + DEEP_OFFSET, full_page[0] + 1 if full_page else 0)
    return {"family_id": str(family), "organization_id": str(organization), "deep": deep}


class Client:
    """One kept-alive connection to the service, reopened if the server closed it."""

    def __init__(self, port: int, token: str):
        self.port, self.headers = port, {"Authorization": f"Bearer {token}"}
        self.conn = None

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            return self._get(path, timeout)
        except (http.client.RemoteDisconnected, ConnectionError):
            self.conn.close()  # gunicorn closed the kept-alive connection: once more, anew
            self.conn = None
            return self._get(path, timeout)

    def _get(self, path: str, timeout: float) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        self.conn.timeout = timeout  # for a new socket; a kept-alive one is told below
        if self.conn.sock is not None:
            self.conn.sock.settimeout(timeout)
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()


def time_pages(client: Client, shape: str, path: str, args,
               family: str | None = None) -> tuple[dict, list[str]]:
    """Latency of one query shape over args.samples requests, after a warm-up; and errors.

    Given `family`, every event on the page must name it, some only in `family_ids`.
    """
    status, body = client.get(path)
    if status != 200:
        return {}, [f"{shape}: GET {path} answered {status}: {body[:300]!r}"]
    items = json.loads(body)["items"]
    errors = []
    seqs = [item["seq"] for item in items]
    if len(items) != PAGE or seqs != sorted(seqs, reverse=True):
        errors.append(f"{shape}: expected {PAGE} events newest first, got {len(items)}")
    if family is not None:
        listed = sum(family in item["family_ids"] for item in items)
        if listed == 0 or not all(item["family_id"] == family or family in item["family_ids"]
                                  for item in items):
            errors.append(f"{shape}: expected events naming {family}, some only listing it")
    for _ in range(args.warmup):
        client.get(path)
    samples, bad = [], 0
    for _ in range(args.samples):
        started = time.perf_counter()
        status, _ = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        bad += status != 200
    if bad:
        errors.append(f"{shape}: {bad} of {args.samples} requests were not 200")
    stats = percentiles(samples)
    stats["first_seq_on_page"], stats["last_seq_on_page"] = seqs[0], seqs[-1]
    if family is not None:
        stats["listing_on_page"] = listed
    log(
        f"audit_scale: {shape}: p50 {stats['p50']:.1f} / p95 {stats['p95']:.1f} / "
        f"p99 {stats['p99']:.1f} ms"
    )
    return stats, errors


def verify_api(client: Client) -> tuple[dict, float]:
    started = time.perf_counter()
    status, body = client.get("/api/v1/audit/verify", timeout=300)
    seconds = time.perf_counter() - started
    if status != 200:
        raise BenchError(f"GET /api/v1/audit/verify answered {status}: {body[:300]!r}")
    return json.loads(body), seconds


def verify_cli(env: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    proc = run(
        [tool("flask"), "--app", "app", "audit", "verify"], timeout=600, env=env, check=False
    )
    seconds = time.perf_counter() - started
    try:
        return json.loads(proc.stdout), seconds
    except ValueError:
        raise BenchError(
            f"`flask audit verify` exited {proc.returncode}: {proc.stderr[-500:]}"
        ) from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True, help="the running service's port")
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--families", type=int, help="default: one per 500 events (2,000 for a million)")
    p.add_argument("--organizations", type=int, default=50)
    p.add_argument("--listed", type=int, default=20, help="families a page of a list names")
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--batch", type=int, default=100_000, help="events per transaction")
    p.add_argument("--samples", type=int, default=300, help="timed requests per query shape")
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    # As many events per family at any size, so a family's deep page is full in a smaller log.
    args.families = args.families or max(1, args.events // 500)
    env = dict(os.environ)
    dsn = env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)

    org = operator(env, "org", "create", "--name", "Bench Auditor", "--type", "community_other")
    auditor = operator(
        env, "client", "create", "--organization", org["id"], "--scopes", "audit:read"
    )
    client = Client(args.port, issue_token(args.port, basic_auth(auditor)))

    log(f"audit_scale: appending {args.events:,} events in batches of {args.batch:,}")
    load = bulk_load(dsn, args)
    rate = args.events / load["seconds"]
    figures = [
        {
            "measure": f"bulk load {args.events:,} chained events (SQL)",
            "figure": f"{load['seconds']:.1f} s, {rate:,.0f} events/s",
            "target": f"<= {LOAD_TARGET_S:g} s",
            "pass": load["seconds"] <= LOAD_TARGET_S,
        }
    ]
    errors = []

    probe = probes(dsn, load["first_seq"], args)
    cursors = URLSafeSerializer(env["SECRET_KEY"], salt="cursor:audit_events")
    pages = {}
    for name in ("family_id", "organization_id"):
        base = f"/api/v1/audit/events?limit={PAGE}&{name}={probe[name]}"
        deep_seq = probe["deep"][name]
        newer = load["last_seq"] - deep_seq
        for depth, path, label in (
            ("first page", base, "first page"),
            ("deep page", f"{base}&cursor={cursors.dumps([deep_seq])}", f"{newer:,} events deep"),
        ):
            shape = f"events?{name}, {depth}"
            family = probe[name] if name == "family_id" else None
            stats, problems = time_pages(client, shape, path, args, family)
            errors += problems
            pages[shape] = stats
            if stats:
                figures.append(
                    {
                        "measure": f"events?{name} ({label}): p50/p95/p99",
                        "figure": f"{stats['p50']:.1f}/{stats['p95']:.1f}/{stats['p99']:.1f} ms",
                        "target": f"p95 <= {P95_TARGET_MS:g} ms",
                        "pass": stats["p95"] <= P95_TARGET_MS,
                    }
                )

    verdicts = {}
    for label, (verdict, seconds) in (
        ("GET /api/v1/audit/verify", verify_api(client)),
        ("flask audit verify (with start-up)", verify_cli(env)),
    ):
        verdicts[label] = {"verdict": verdict, "seconds": seconds}
        checked = verdict.get("checked", 0)
        log(f"audit_scale: {label}: {checked:,} events in {seconds:.1f}s, valid={verdict['valid']}")
        if not verdict.get("valid"):
            errors.append(f"{label}: the chain does not verify: {verdict}")
        figures.append(
            {
                "measure": f"{label}, {checked:,} events",
                "figure": f"{seconds:.1f} s, {checked / seconds:,.0f} events/s",
                "target": f">= {VERIFY_TARGET:,} events/s",
                "pass": checked / seconds >= VERIFY_TARGET,
            }
        )

    emit(
        {
            "figures": figures,
            "errors": errors,
            "details": {"load": load, "probes": probe, "pages": pages, "verify": verdicts},
        }
    )


if __name__ == "__main__":
    main()
