"""Faults that need real processes: a worker killed mid-request under load, and PostgreSQL
restarted under load. Run with `bench/faults` (see bench/README.md).

Each scenario starts from the bench's seeded network on a fresh PostgreSQL database and the
service under gunicorn, drives referral traffic with wrk, breaks something, then checks what
must hold: nothing half-written (every referral with its timeline entry and its audit event,
no event without its referral), the chain verifying, and, after the database came back, the
service answering again without a restart of its own while `/readyz` reported the outage.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from string import Template

import psycopg
from common import BenchError, api, log, request
from harness import (
    RESULTS,
    Server,
    ensure_postgres,
    ensure_wrk,
    pg_ready,
    psql,
    run,
    seed,
    seed_through_api,
    service_env,
    tool,
    wrk,
)
from seeding import REFERRAL_TEMPLATE

_ACCESS = re.compile(r'" (\d{3}) ')


def _sends(context: dict) -> list[tuple[str, str]]:
    return [("/api/v1/referrals", Template(REFERRAL_TEMPLATE).substitute(context | f))
            for f in context["referral_families"]]


def _statuses(log_path: Path, since: int) -> Counter:
    """Status codes in the service's access log, from byte offset `since`."""
    with open(log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return Counter(m.group(1) for m in _ACCESS.finditer(text))


def _consistency(database_url: str) -> dict:
    """Nothing half-written: each referral has its creation step and its one `create` event,
    no event names a referral that does not exist, nothing waits unchained once an auditor has
read the trail."""
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as db:
        one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "referrals": one("SELECT count(*) FROM referrals"),
            "without_their_creation_step": one(
                "SELECT count(*) FROM referrals r WHERE NOT EXISTS (SELECT 1 FROM "
                "referral_events e WHERE e.referral_id = r.id AND e.referral_version = 1)"),
            "without_their_create_event": one(
                "SELECT count(*) FROM referrals r WHERE (SELECT count(*) FROM audit_events a "
                "WHERE a.action = 'create' AND a.resource_type = 'referral' "
                "AND a.resource_id = r.id::text) <> 1"),
            "events_without_their_referral": one(
                "SELECT count(*) FROM audit_events a WHERE a.action = 'create' "
                "AND a.resource_type = 'referral' AND a.outcome = 'permit' AND NOT EXISTS "
                "(SELECT 1 FROM referrals r WHERE r.id::text = a.resource_id)"),
            "unchained_pending_events": one("SELECT count(*) FROM audit_pending"),
        }


def _verify(port: int, context: dict) -> dict:
    verdict = api(port, "GET", "/api/v1/audit/verify", context["auditor_token"])
    return {key: verdict.get(key) for key in ("valid", "checked", "first_bad_seq", "reason")}


def _load(port: int, context: dict, seconds: int, args) -> threading.Thread:
    headers = {"Authorization": f"Bearer {context['custodian_token']}",
               "Content-Type": "application/json"}
    variants = _sends(context)
    result = {}

    def drive():
        try:
            result.update(wrk(port, "POST", variants[0][0], headers, variants[0][1], seconds,
                              args, variants))
        except BenchError as error:
            result["error"] = str(error)

    thread = threading.Thread(target=drive, daemon=True)
    thread.result = result
    thread.start()
    return thread


def worker_killed(service: Server, context: dict, env: dict, args) -> dict:
    """SIGKILL a worker twice while referrals are being sent."""
    offset = service.log_path.stat().st_size
    load = _load(service.port, context, args.seconds, args)
    killed = []
    for _ in range(2):
        time.sleep(args.seconds * 0.3)
        workers = subprocess.run(["pgrep", "-P", str(service.proc.pid)], capture_output=True,
                                 text=True, check=False).stdout.split()
        if workers:
            os.kill(int(workers[0]), signal.SIGKILL)
            killed.append(int(workers[0]))
            log(f"killed worker {workers[0]} mid-load")
    load.join()
    time.sleep(2)  # gunicorn replaces the killed workers
    chain = _verify(service.port, context)  # an auditor's read: it seals what waits first
    checks = _consistency(env["DATABASE_URL"])
    statuses = _statuses(service.log_path, offset)
    passed = (chain["valid"] and checks["without_their_creation_step"] == 0
              and checks["without_their_create_event"] == 0
              and checks["events_without_their_referral"] == 0
              and checks["unchained_pending_events"] == 0
              and not any(code.startswith("5") and code != "503" for code in statuses))
    return {"name": "worker_killed", "killed_workers": killed, "wrk": load.result,
            "statuses": dict(statuses), "consistency": checks, "chain": chain,
            "passed": passed}


def postgres_restarted(service: Server, context: dict, env: dict, args) -> dict:
    """Restart PostgreSQL while referrals are being sent; watch /readyz throughout."""
    offset = service.log_path.stat().st_size
    readiness: list[tuple[float, int]] = []
    watching = threading.Event()

    def watch():
        start = time.monotonic()
        while not watching.is_set():
            try:
                status = request(service.port, "GET", "/readyz", timeout=3)[0]
            except OSError:
                status = 0
            readiness.append((round(time.monotonic() - start, 2), status))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    load = _load(service.port, context, args.seconds, args)
    time.sleep(args.seconds * 0.3)
    versions = sorted(os.listdir("/etc/postgresql"), key=float)
    log(f"restarting PostgreSQL {versions[-1]} under load")
    restarted_at = time.monotonic()
    run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart",
         "-m", "fast"], timeout=120)
    while not pg_ready():
        time.sleep(0.2)
    log(f"PostgreSQL back after {time.monotonic() - restarted_at:.1f}s")
    load.join()
    recovered_after = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if request(service.port, "GET", "/readyz", timeout=3)[0] == 200:
            recovered_after = round(time.monotonic() - restarted_at, 1)
            break
        time.sleep(0.2)
    watching.set()
    watcher.join()
    after = request(service.port, "GET", "/api/v1/me",
                    {"Authorization": f"Bearer {context['custodian_token']}"})[0]
    statuses = _statuses(service.log_path, offset)
    chain = _verify(service.port, context)  # an auditor's read: it seals what waits first
    checks = _consistency(env["DATABASE_URL"])
    outage_seen = any(status == 503 for _, status in readiness)
    down = [t for t, status in readiness if status != 200]
    back = [t for t, status in readiness if status == 200 and down and t > down[-1]]
    readyz_outage = round(back[0] - down[0], 2) if down and back else None
    passed = (outage_seen and recovered_after is not None and after == 200 and chain["valid"]
              and checks["without_their_create_event"] == 0
              and checks["events_without_their_referral"] == 0
              and not any(code.startswith("5") and code != "503" for code in statuses))
    return {"name": "postgres_restarted", "wrk": load.result, "statuses": dict(statuses),
            "readyz_saw_outage": outage_seen, "readyz_not_ready_for_s": readyz_outage,
            "ready_again_after_restart_began_s": recovered_after,
            "readyz": readiness, "request_after": after, "consistency": checks,
            "chain": chain, "passed": passed}


SCENARIOS = {"worker_killed": worker_killed, "postgres_restarted": postgres_restarted}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/faults", description=__doc__.splitlines()[0])
    p.add_argument("--only", help=f"comma-separated, among: {', '.join(SCENARIOS)}")
    p.add_argument("--seconds", type=int, default=20, help="load per scenario (default 20)")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=int, default=5)
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    with ExitStack() as cleanup:
        ensure_wrk()
        ensure_postgres()
        database = "faults_" + stamp.lower().replace("t", "_").rstrip("z")
        psql(f'CREATE DATABASE "{database}"')
        cleanup.callback(lambda: pg_ready() and psql(
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        env = service_env(database, GUNICORN_ACCESS_LOG="-")
        run([tool("flask"), "--app", "app", "db", "upgrade"], timeout=120, env=env)
        context, problems = seed(env), {}
        log_path = RESULTS / f"{stamp}-faults-service.log"
        service = Server("service", "app:app", env, log_path)
        cleanup.callback(service.stop)
        service.start("/healthz")
        seed_through_api(service.port, context, problems)
        if problems:
            raise BenchError(f"seeding failed: {problems}")
        results = []
        for name in names:
            log(f"{name}: {args.seconds}s of referral sends")
            result = SCENARIOS[name](service, context, env, args)
            log(f"{name}: {'PASS' if result['passed'] else 'FAIL'}")
            results.append(result)
    out = RESULTS / f"{stamp}-faults.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    for r in results:
        summary = {k: v for k, v in r.items() if k not in ("readyz", "wrk")}
        print(json.dumps(summary, default=str))
    log(f"wrote {out.relative_to(RESULTS.parent.parent)}")
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
