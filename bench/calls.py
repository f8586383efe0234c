#!/usr/bin/env python3
"""Python function calls per request, scenario by scenario, against the floor's.

The throughput ratios of bench/run drift with the shared machine's speed; this count does not.
Each scenario's request runs in-process (Flask's test client) on a fresh, seeded PostgreSQL
database, under cProfile, and the report is its calls per request and the floor's calls as a
fraction of them (1.00: as few as a bare insert or select). Use it to see whether a change
makes a request do less work; use bench/run to see what that is worth in requests per second.

    .venv/bin/python bench/calls.py [--only me,family_read_consented] [--requests 100] [--dump DIR]
                                    [--sql]

With --sql, the SQL statements of one more request of each scenario are printed after it.
"""

import argparse
import cProfile
import os
import pstats
import secrets
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, log, tool  # noqa: E402
from harness import (  # noqa: E402
    RESULTS,
    Server,
    ensure_postgres,
    psql,
    resolve,
    seed,
    seed_through_api,
    service_env,
)
from scenarios import SCENARIOS  # noqa: E402


def calls_per_request(app, scenario: dict, context: dict, requests: int,
                      dump: Path | None = None, sql: bool = False) -> float:
    """Warm the scenario's request up, then count the calls of `requests` more.

    With `dump`, the profile is also written to `dump/<scenario>.prof` (read it with pstats).
    """
    path, headers, body, variants = resolve(scenario, context)
    variants = variants or [(path, body)]
    client = app.test_client()

    def one(i: int) -> None:
        path, body = variants[i % len(variants)]
        answer = client.open(path, method=scenario["method"], headers=headers, data=body)
        if answer.status_code >= 400:
            raise SystemExit(f"{scenario['name']}: {answer.status_code} "
                             f"{answer.get_data(as_text=True)[:300]}")

    for i in range(30):
        one(i)
    profile = cProfile.Profile()
    profile.enable()
    for i in range(requests):
        one(i)
    profile.disable()
    if dump:
        dump.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(dump / f"{scenario['name']}.prof")
    if sql:
        print_statements(app, scenario["name"], lambda: one(requests))
    return pstats.Stats(profile).total_calls / requests


def print_statements(app, name: str, request) -> None:
    """Print the statements `request()` sends through the app's engine (or engines)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sent = []

    def note(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split())[:160])

    event.listen(Engine, "before_cursor_execute", note)
    try:
        with app.app_context():
            request()
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    print(f"-- {name}: {len(sent)} statements", *sent, sep="\n   ")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated scenario names (floors are added)")
    parser.add_argument("--requests", type=int, default=100, help="counted per scenario")
    parser.add_argument("--dump", type=Path,
                        help="write each scenario's profile to DUMP/<name>.prof")
    parser.add_argument("--sql", action="store_true",
                        help="print the statements of one request of each scenario")
    args = parser.parse_args(argv)
    scenarios = [s for s in SCENARIOS if not s.get("mix")]
    if args.only:
        wanted = set(args.only.split(","))
        wanted |= {s.get("floor_to_compare") for s in scenarios if s["name"] in wanted}
        scenarios = [s for s in scenarios if s["name"] in wanted]

    ensure_postgres()
    database = f"bench_calls_{secrets.token_hex(4)}"
    psql(f'CREATE DATABASE "{database}"')
    try:
        env = service_env(database)
        subprocess.run([tool("flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "bench.floor"], cwd=ROOT, env=env, check=True)
        context, problems = seed(env), {}
        RESULTS.mkdir(exist_ok=True)
        server = Server("service", "app:app", env, RESULTS / "calls-service.log")
        server.start("/healthz")
        try:
            seed_through_api(server.port, context, problems)
        finally:
            server.stop()
        if problems:
            raise SystemExit(f"seeding failed: {problems}")

        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        from app import create_app
        from bench import floor

        apps = {"service": create_app(), "floor": floor.app}
        counted = {s["name"]: calls_per_request(apps[s["target"]], s, context, args.requests,
                                                     args.dump, args.sql)
                   for s in scenarios}
    finally:
        psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print(f"{'scenario':24s} {'calls/request':>13s}  {'floor':12s} {'x floor':>7s}")
    for s in scenarios:
        floor_name = s.get("floor_to_compare")
        ratio = f"{counted[floor_name] / counted[s['name']]:.2f}" if floor_name in counted \
            else "-"
        print(f"{s['name']:24s} {counted[s['name']]:13.0f}  {floor_name or '-':12s} {ratio:>7s}")
    log("calls counted in-process; bench/run measures what they cost in req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
