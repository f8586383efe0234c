"""The benchmark harness behind bench/run.

Sets up a fresh PostgreSQL database, migrates and seeds the service through its operator
commands, starts the service and the floor (bench/floor.py) with the same gunicorn config,
drives each scenario with wrk, and reports every figure next to its floor's from the same run.
"""

import argparse
import json
import os
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from common import (
    BENCH,
    HOST,
    ROOT,
    BenchError,
    basic_auth,
    issue_token,
    log,
    operator,
    request,
    run,
    tool,
)
from report import plot, sustained_lines
from scenarios import SCENARIOS
from seeding import seed_consented_family, seed_referrals
from sustained import measure_sustained

RESULTS = BENCH / "results"
#: The floor scenarios by name: each service scenario is paired with a run of its floor.
FLOORS = {s["name"]: s for s in SCENARIOS if s["target"] == "floor"}
LUA = BENCH / "request.lua"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
PG_PORT = 5432
SEED_ORGS = 30
CLIENT_SCOPES = "directory:read directory:write"
CUSTODIAN_SCOPES = "families:write consent:write families:read referrals:write referrals:read"
PROVIDER_SCOPES = "families:read referrals:read referrals:write"
AUDITOR_SCOPES = "audit:read"


# --- machine setup -------------------------------------------------------------------------


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    log("wrk is missing: installing Debian's package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "wrk"]
    if run(install, timeout=600, env=env, check=False).returncode != 0:
        run(["apt-get", "update"], timeout=600, env=env)
        run(install, timeout=600, env=env)


def pg_ready() -> bool:
    cmd = ["pg_isready", "-h", HOST, "-p", str(PG_PORT), "-t", "5"]
    return run(cmd, timeout=15, check=False).returncode == 0


def ensure_postgres() -> None:
    if pg_ready():
        return
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v))
    if not versions:
        raise BenchError("PostgreSQL is not running and no cluster is in /etc/postgresql")
    log(f"starting PostgreSQL {versions[-1]}")
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    run(cmd, timeout=60)
    deadline = time.monotonic() + 30
    while not pg_ready():
        if time.monotonic() > deadline:
            raise BenchError(f"PostgreSQL did not accept connections on {HOST}:{PG_PORT}")
        time.sleep(0.5)


def psql(sql: str) -> None:
    cmd = [
        "psql",
        "-h",
        HOST,
        "-p",
        str(PG_PORT),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-qc",
        sql,
    ]
    run(cmd, timeout=60, env=dict(os.environ, PGCONNECT_TIMEOUT="10"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- servers -------------------------------------------------------------------------------


class Server:
    """A gunicorn in its own process group, so stopping it also stops every worker."""

    def __init__(self, name: str, app: str, env: dict, log_path: Path):
        self.name, self.app, self.env, self.log_path = name, app, env, log_path
        self.port = free_port()
        self.proc = None

    def start(self, ready_path: str, timeout: float = 60) -> None:
        cmd = [tool("gunicorn"), "-c", str(GUNICORN_CONF), self.app]
        env = dict(self.env, BIND=f"{HOST}:{self.port}")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if request(self.port, "GET", ready_path, timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name}: GET {ready_path} not 200 after {timeout:.0f}s;"
                    f" see {self.log_path}"
                )
            time.sleep(0.25)
        log(f"{self.name} up on {HOST}:{self.port} (log: {self.log_path.relative_to(ROOT)})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue


# --- service data --------------------------------------------------------------------------


def seed(env: dict) -> dict:
    """Create the organizations and clients with the operator commands; return their ids and
    credentials for the scenarios."""

    def create_org(name: str) -> str:
        org = operator(
            env,
            "org",
            "create",
            "--name",
            name,
            "--type",
            "imh_provider",
            "--county",
            "Washtenaw",
            "--language",
            "en",
            "--accepting",
        )
        return org["id"]

    def create_client(org_id: str, scopes: str) -> dict:
        return operator(env, "client", "create", "--organization", org_id, "--scopes", scopes)

    names = [f"Bench Organization {i:02d}" for i in range(1, SEED_ORGS + 1)]
    names += ["Bench Custodian", "Bench Provider"]
    # Each command pays a full app start-up; a few at once keep seeding to seconds.
    with ThreadPoolExecutor(max_workers=4) as pool:
        org_ids = list(pool.map(create_org, names))
        custodian_org, provider_org = org_ids[-2:]
        clients = list(
            pool.map(
                create_client,
                [org_ids[0], custodian_org, provider_org, org_ids[1]],
                [CLIENT_SCOPES, CUSTODIAN_SCOPES, PROVIDER_SCOPES, AUDITOR_SCOPES],
            )
        )
    directory, custodian, provider, auditor = clients
    log(f"seeded {len(org_ids)} organizations and 4 clients")
    return {
        "org_id": org_ids[0],
        "other_org_ids": org_ids[1:SEED_ORGS],
        "client_id": directory["client_id"],
        "basic": basic_auth(directory),
        "custodian_org_id": custodian_org,
        "custodian_basic": basic_auth(custodian),
        "provider_org_id": provider_org,
        "provider_basic": basic_auth(provider),
        "auditor_basic": basic_auth(auditor),
    }


def seed_through_api(port: int, context: dict, problems: dict) -> None:
    """Tokens and the consented family; a failure is noted for the scenarios needing them."""
    try:
        context["token"] = issue_token(port, context["basic"])
    except BenchError as error:
        problems["token"] = str(error)
    try:
        custodian_token = issue_token(port, context["custodian_basic"])
        family = seed_consented_family(
            port,
            custodian_token=custodian_token,
            custodian_org=context["custodian_org_id"],
            provider_org=context["provider_org_id"],
            others=context["other_org_ids"],
        )
        context["family_id"] = family["family_id"]
        context["custodian_token"] = custodian_token
        context["provider_token"] = issue_token(port, context["provider_basic"])
        context["auditor_token"] = issue_token(port, context["auditor_basic"])
        context.update(seed_referrals(port, custodian_token=custodian_token,
                                      custodian_org=context["custodian_org_id"],
                                      provider_org=context["provider_org_id"],
                                      provider_token=context["provider_token"]))
    except (BenchError, OSError, ValueError, KeyError) as error:
        for key in ("family_id", "custodian_token", "provider_token", "auditor_token",
                    "referral_families",
                    "read_referrals", "working_referrals"):
            problems.setdefault(key, f"seeding the consented family failed: {error}")


# --- scenarios -----------------------------------------------------------------------------


def resolve(scenario: dict, context: dict) -> tuple[str, dict, str | None, list]:
    """The scenario's path, headers and body with ${...} filled in (KeyError if unknown), and
    for a scenario that rotates, every (path, body) it rotates over (the first is returned
    as the path and body)."""

    def fill(text, values=context):
        return None if text is None else Template(text).substitute(values)

    headers = {name: fill(value) for name, value in scenario.get("headers", {}).items()}
    variants = [(fill(scenario["path"], context | item), fill(scenario.get("body"), context | item))
                for item in (context[scenario["rotate"]] if "rotate" in scenario else [{}])]
    path, body = variants[0]
    return path, headers, body, variants if len(variants) > 1 else []


def wrk(port: int, method: str, path: str, headers: dict, body, seconds: int, args,
        variants=()) -> dict:
    """Drive one request shape (or a rotation over `variants` of path and body) with wrk for
    `seconds`; return request.lua's JSON summary."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "wrk.json"
        env = dict(
            os.environ,
            WRK_METHOD=method,
            WRK_HEADERS="\n".join(f"{k}: {v}" for k, v in headers.items()),
            WRK_BODY=body or "",
            WRK_REQUESTS="\n".join(f"{p}\t{b or ''}" for p, b in variants),
            WRK_OUT=str(out),
        )
        cmd = [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{seconds}s",
            f"--timeout={args.timeout}s",
            "-s",
            str(LUA),
            f"http://{HOST}:{port}{path}",
        ]
        run(cmd, timeout=seconds + args.timeout + 30, env=env)
        return json.loads(out.read_text())


def measure(scenario: dict, port: int, context: dict, problems: dict, args) -> dict:
    """Check one request by hand, warm up, then measure. Never raises for the service's faults."""
    keys = ("name", "target", "method", "path", "floor_to_compare", "min_rps_ratio",
            "max_p99_ratio", "statements")
    result = {key: scenario.get(key) for key in keys}
    try:
        path, headers, body, variants = resolve(scenario, context)
    except KeyError as error:
        key = error.args[0]
        result["failure"] = f"${{{key}}} unavailable: {problems.get(key, 'not provided')}"
        return result
    # A request that fails here would fail every time; its throughput would mean nothing.
    try:
        status, payload = request(port, scenario["method"], path, headers, body)
    except OSError as error:
        result["failure"] = f"{scenario['method']} {path} failed: {error!r}"
        return result
    result["check"] = {
        "status": status,
        "bytes": len(payload),
        "body": payload[:300].decode(errors="replace"),
    }
    if status >= 400:
        result["failure"] = f"{scenario['method']} {path} answered {status}: {payload[:300]!r}"
        return result
    if variants:
        result["rotates_over"] = len(variants)
    if args.warmup:
        wrk(port, scenario["method"], path, headers, body, args.warmup, args, variants)
    result["wrk"] = wrk(port, scenario["method"], path, headers, body, args.duration, args,
                        variants)
    result["status_errors"], result["socket_errors"] = wrk_errors(result["wrk"])
    return result


def wrk_errors(*runs: dict) -> tuple[int, int]:
    """Error answers (4xx/5xx) and socket errors over one or more wrk runs."""
    status = sum(run["errors"]["status"] for run in runs)
    socket = sum(run["errors"][kind] for run in runs
                 for kind in ("connect", "read", "write", "timeout"))
    return status, socket


def measure_in_rounds(scenario: dict, servers: dict, context: dict, problems: dict,
                      args) -> dict:
    """The scenario and its floor in turns, `args.rounds` times, each for `args.duration`.

    On a shared machine the speed drifts within seconds (one run's floors ranged from 1,149
    to 1,695 req/s), so one pair can say more about the drift than about the service. Each
    round's ratio compares two runs seconds apart, and the figures kept are the median round's
    (the lower middle one for an even count); every round's ratio is kept beside them.
    """
    result = measure(scenario, servers[scenario["target"]].port, context, problems, args)
    floor = FLOORS.get(scenario.get("floor_to_compare"))
    if not floor or "floor" not in servers or "wrk" not in result:
        return result
    path, headers, body, variants = resolve(scenario, context)
    floors = {"paired_floor": floor}
    if "statements" in scenario:
        floors["paired_statements"] = statements_floor(*scenario["statements"])
    rounds = []
    for number in range(args.rounds):
        mine = result["wrk"] if number == 0 else wrk(
            servers[scenario["target"]].port, scenario["method"], path, headers, body,
            args.duration, args, variants)
        turn = {"wrk": mine}
        for key, bare in floors.items():
            turn[key] = wrk(servers["floor"].port, bare["method"], bare["path"], {}, None,
                            args.duration, args)
        base = turn["paired_floor"]
        turn["rps_ratio"] = mine["rps"] / base["rps"] if base["rps"] else 0.0
        rounds.append(turn)
    middle = sorted(rounds, key=lambda r: r["rps_ratio"])[(len(rounds) - 1) // 2]
    result.update((key, middle[key]) for key in ("wrk", *floors))
    result["round_ratios"] = [round(r["rps_ratio"], 3) for r in rounds]
    if "paired_statements" in floors:
        # The ceiling drifts as the other ratio does: each round's, and their median, kept.
        result["round_ceilings"] = [
            round(r["paired_statements"]["rps"] / r["paired_floor"]["rps"], 3)
            for r in rounds if r["paired_floor"]["rps"]]
    # Every round's errors count, not only the median round's.
    result["status_errors"], result["socket_errors"] = wrk_errors(*(r["wrk"] for r in rounds))
    return result


def statements_floor(selects: int, writes: int) -> dict:
    """The floor request that sends `selects` reads by key and `writes` inserts, then commits."""
    return {"name": f"floor_statements_{selects}_{writes}", "target": "floor", "method": "POST",
            "path": f"/statements/{selects}/{writes}"}


def measure_mix(scenario: dict, service, context: dict, problems: dict, results: list,
                env: dict, args) -> dict:
    """The sustained mixed load (sustained.py), against the floor measured before it."""
    keys = ("name", "target", "method", "path", "floor_to_compare", "min_rps_ratio",
            "max_p99_ratio")
    result = {key: scenario.get(key) for key in keys}
    floor = next((r for r in results if r["name"] == scenario["floor_to_compare"]), {})
    try:
        report = measure_sustained(
            scenario, service.port, context, args, service_pid=service.proc.pid,
            database_url=env["DATABASE_URL"],
            floor_p99_ms=floor.get("wrk", {}).get("latency_ms", {}).get("p99"))
    except KeyError as error:
        key = error.args[0]
        result["failure"] = f"${{{key}}} unavailable: {problems.get(key, 'not provided')}"
        return result
    except BenchError as error:
        result["failure"] = str(error)
        return result
    result["wrk"] = report["wrk"]
    result["sustained"] = report
    result["status_errors"] = report["server_errors"]
    result["socket_errors"] = wrk_errors(report["wrk"])[1]
    result["target_met"] = report["passed"]
    return result


def add_ratios(results: list[dict]) -> None:
    by_name = {r["name"]: r for r in results}
    for r in results:
        floor = by_name.get(r.get("floor_to_compare"))
        if "wrk" not in r or not floor or "wrk" not in floor:
            continue
        mine, base = r["wrk"], r.get("paired_floor") or floor["wrk"]
        if base["rps"]:
            r["rps_ratio"] = mine["rps"] / base["rps"]
        if base["latency_ms"]["p99"]:
            r["p99_ratio"] = mine["latency_ms"]["p99"] / base["latency_ms"]["p99"]
        if r.get("round_ceilings") and "rps_ratio" in r:
            # The most a request of these statements can reach on this stack (the median
            # round's), and how much of it the service's own code leaves.
            r["statements_ceiling"] = _median(r["round_ceilings"])
            r["statements_ratio"] = r["rps_ratio"] / r["statements_ceiling"]
        if r.get("min_rps_ratio") is not None and "rps_ratio" in r and "sustained" not in r:
            r["target_met"] = r["rps_ratio"] >= r["min_rps_ratio"]
            if r.get("max_p99_ratio") is not None and "p99_ratio" in r:
                r["target_met"] &= r["p99_ratio"] <= r["max_p99_ratio"]


def failed(r: dict) -> bool:
    return bool(r.get("failure") or r.get("status_errors") or r.get("socket_errors"))


# --- steps: measurements that are not wrk runs -----------------------------------------------

#: Each runs as its own process (the service's code and its config stay out of the harness),
#: after the wrk scenarios, in this order, and prints one JSON document (see common.emit).
STEPS = [
    {"name": "engine", "script": "engine.py", "timeout": 300},
    {"name": "chain_concurrency", "script": "concurrency.py", "timeout": 600},
    {"name": "audit_scale", "script": "audit_scale.py", "timeout": 1800},
]


def step_argv(name: str, port: int, context: dict, args) -> list[str]:
    """The step's command-line arguments (KeyError when seeded data it needs is missing)."""
    if name == "engine":
        return [
            "--family-id",
            context["family_id"],
            "--organization-id",
            context["provider_org_id"],
        ]
    if name == "audit_scale":
        return ["--port", str(port), "--events", str(args.audit_events)]
    return []


def run_step(step: dict, argv: list[str], env: dict) -> dict:
    """Run one step with a time bound; its progress goes to our stderr, its JSON to us."""
    cmd = [sys.executable, str(BENCH / step["script"]), *argv]
    # Its own process group: a timeout or Ctrl-C here also ends any workers it started.
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=step["timeout"])
    except subprocess.TimeoutExpired:
        return {"failure": f"timed out after {step['timeout']}s"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc.returncode != 0:
        return {"failure": f"exited with {proc.returncode} (its messages are above)"}
    try:
        return json.loads(out)
    except ValueError:
        return {"failure": f"printed no JSON result: {out[:300]!r}"}


def run_steps(names: set, port: int, context: dict, problems: dict, env: dict, args) -> list:
    results = []
    step_env = dict(env, PYTHONPATH=str(ROOT))  # the steps import the service's packages
    for step in STEPS:
        if step["name"] not in names:
            continue
        log(f"{step['name']}: running bench/{step['script']}")
        try:
            argv = step_argv(step["name"], port, context, args)
        except KeyError as error:
            key = error.args[0]
            outcome = {"failure": f"{key} unavailable: {problems.get(key, 'not provided')}"}
        else:
            started = time.monotonic()
            outcome = run_step(step, argv, step_env)
            outcome["seconds"] = round(time.monotonic() - started, 1)
        result = {"name": step["name"], **outcome}
        for line in step_alarms(result):
            log(f"!! {line}")
        results.append(result)
    return results


def step_alarms(r: dict) -> list[str]:
    lines = [f"{r['name']}: not measured: {r['failure']}"] if r.get("failure") else []
    return lines + [f"{r['name']}: {error}" for error in r.get("errors", [])]


# --- report --------------------------------------------------------------------------------

COLUMNS = [
    "scenario",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "errors",
    "floor",
    "x floor req/s",
    "x floor p99",
    "target",
    "result",
    "statements",
    "stmts floor x floor",
    "x stmts floor",
]
STEP_COLUMNS = ["step", "measure", "figure", "target", "result"]
#: Left-aligned; the others hold figures and are right-aligned.
TEXT_COLUMNS = {"scenario", "floor", "target", "result", "step", "measure"}


def verdict(passed) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def row(r: dict) -> list[str]:
    def ratio(key):
        return f"{r[key]:.2f}" if key in r else "-"

    target = "-" if r.get("min_rps_ratio") is None else f">= {r['min_rps_ratio']:.2f}"
    floor = r.get("floor_to_compare") or "-"
    if "paired_floor" in r:
        floor += f" {r['paired_floor']['rps']:.0f}/s"
    statements = "{}r+{}w".format(*r["statements"]) if r.get("statements") else "-"
    same = [statements, ratio("statements_ceiling") + _spread(r, "round_ceilings"),
            ratio("statements_ratio")]
    if "wrk" not in r:
        return [r["name"], "-", "-", "-", "-", "FAILED", floor, "-", "-", target, "-", *same]
    w, lat = r["wrk"], r["wrk"]["latency_ms"]
    errors = []
    if r["status_errors"]:
        errors.append(f"{r['status_errors']} 4xx/5xx")
    if r["socket_errors"]:
        errors.append(f"{r['socket_errors']} socket")
    return [
        r["name"],
        f"{w['rps']:.0f}",
        f"{lat['p50']:.1f}",
        f"{lat['p90']:.1f}",
        f"{lat['p99']:.1f}",
        ", ".join(errors) or "0",
        floor,
        ratio("rps_ratio") + _spread(r),
        ratio("p99_ratio"),
        target,
        verdict(r.get("target_met")),
        *same,
    ]


def _spread(r: dict, key="round_ratios") -> str:
    """The lowest and highest round's ratio, when the scenario ran in several rounds."""
    ratios = r.get(key) or []
    return f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""


def _median(values: list[float]) -> float:
    """The middle value (the lower middle one for an even count), as rounds are read."""
    return sorted(values)[(len(values) - 1) // 2]


def step_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.get("failure"):
            rows.append([r["name"], "-", "FAILED", "-", "-"])
        for f in r.get("figures", []):
            target = f.get("target") or "-"
            rows.append([r["name"], f["measure"], f["figure"], target, verdict(f.get("pass"))])
    return rows


def text_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(columns, *rows, strict=False)]
    lines = [columns, ["-" * w for w in widths], *rows]
    left = [name in TEXT_COLUMNS for name in columns]
    return "\n".join(
        "  ".join(
            c.ljust(w) if is_text else c.rjust(w)
            for c, w, is_text in zip(line, widths, left, strict=True)
        ).rstrip()
        for line in lines
    )


def markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(meta: dict, rows: list, steps: list, alarms: list[str], results: list[dict],
             image: str | None = None) -> str:
    out = [f"# Benchmark {meta['started']}", ""]
    out += [f"- {key}: `{value}`" for key, value in meta.items() if key != "started"]
    if image:
        out += ["", f"![Throughput and p99 of each scenario against its floor]({image})"]
    if rows:
        out += ["", *markdown_table(COLUMNS, rows)]
    out += sustained_lines(results)
    if steps:
        out += ["", *markdown_table(STEP_COLUMNS, steps)]
    if alarms:
        out += ["", "## Errors", ""] + [f"- {a}" for a in alarms]
    return "\n".join(out) + "\n"


def alarm_lines(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        if r.get("failure"):
            lines.append(f"{r['name']}: not measured: {r['failure']}")
        elif failed(r):
            lines.append(
                f"{r['name']}: {r['status_errors']} 4xx/5xx responses and "
                f"{r['socket_errors']} socket errors in {r['wrk']['requests']} requests"
                f" ({r['wrk']['errors']})"
            )
    return lines


def run_meta(stamp: str, args, server_env: dict) -> dict:
    conf = runpy.run_path(str(GUNICORN_CONF))  # reads the same environment the servers get
    head = run(["git", "rev-parse", "--short", "HEAD"], timeout=10, check=False)
    wrk_version = run(["wrk", "-v"], timeout=10, check=False)
    return {
        "started": stamp,
        "commit": head.stdout.strip() or "none",
        "cpus": os.cpu_count(),
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s x {args.rounds} rounds "
        f"(warm-up {args.warmup}s, timeout {args.timeout}s)",
        "wrk_version": (wrk_version.stdout or wrk_version.stderr).split("[")[0].strip(),
        "gunicorn": f"{conf['worker_class']} workers={conf['workers']} threads={conf['threads']} "
                    f"switch_interval={conf['_switch_interval']}",
        "database": server_env["DATABASE_URL"].rsplit("/", 1)[-1],
    }


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str]):
    names = [s["name"] for s in SCENARIOS]
    step_names = [s["name"] for s in STEPS]
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int,
                   help="seconds per measured run, each round (default 5)")
    p.add_argument("--rounds", type=int,
                   help="runs of each scenario, each followed by its floor's; the median "
                        "round's ratio counts (default 3; --quick: 1)")
    p.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up seconds (default 3, 0: none)")
    p.add_argument("--timeout", type=int, default=5, help="wrk request timeout s (default 5)")
    p.add_argument(
        "--audit-events",
        type=int,
        help="events audit_scale adds to the log (default 1000000; --quick: 100000)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 5s per scenario")
    p.add_argument("--sustained-seconds", type=int,
                   help="the sustained mixed load's length (default 300; --quick: 60)")
    p.add_argument("--only", help=f"comma-separated, among: {', '.join(names + step_names)}")
    p.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    p.add_argument("--report", action="store_true",
                   help="also write bench/REPORT.md and bench/report.png from this run")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 5
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.sustained_seconds is None:
        args.sustained_seconds = 60 if args.quick else 300
    if args.audit_events is None:
        args.audit_events = 100_000 if args.quick else 1_000_000
    if args.threads < 1 or args.connections < args.threads or args.duration < 1 \
            or args.rounds < 1:
        p.error("need --threads >= 1, --connections >= --threads, --duration >= 1 "
                "and --rounds >= 1")
    if args.audit_events < 10_000:
        p.error("need --audit-events >= 10000")
    wanted = set(names + step_names)
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        if unknown := wanted - set(names + step_names):
            p.error(f"unknown scenario(s) or step(s): {', '.join(sorted(unknown))}")
        # A ratio needs its floor measured in the same run.
        floors = {s.get("floor_to_compare") for s in SCENARIOS if s["name"] in wanted}
        wanted |= floors - {None}
    args.scenarios = [s for s in SCENARIOS if s["name"] in wanted]
    args.steps = {name for name in step_names if name in wanted}
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Turn `kill` into an exception so the finally-blocks stop servers and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: (log("terminated"), sys.exit(143)))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    try:
        with ExitStack() as cleanup:
            results, steps, meta = bench(stamp, args, cleanup)
    except BenchError as error:
        log(f"FAILED: {error}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    meta["run_seconds"] = round(time.monotonic() - started)

    add_ratios(results)
    rows, extra = [row(r) for r in results], step_rows(steps)
    alarms = alarm_lines(results) + [a for r in steps for a in step_alarms(r)]
    if rows:
        print(text_table(COLUMNS, rows))
    if extra:
        print(("\n" if rows else "") + text_table(STEP_COLUMNS, extra))
    md_path, json_path = RESULTS / f"{stamp}.md", RESULTS / f"{stamp}.json"
    png_path = RESULTS / f"{stamp}.png"
    image = png_path.name if plot(results, png_path) else None
    md_path.write_text(markdown(meta, rows, extra, alarms, results, image))
    if args.report:
        # The committed report: this one run's tables and plot, nothing merged from others.
        (BENCH / "REPORT.md").write_text(
            markdown(meta, rows, extra, alarms, results, image and "report.png"))
        if image:
            shutil.copyfile(png_path, BENCH / "report.png")
        log("wrote bench/REPORT.md" + (" and bench/report.png" if image else ""))
    document = {"meta": meta, "scenarios": results, "steps": steps}
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    log(f"wrote {md_path.relative_to(ROOT)} and {json_path.relative_to(ROOT)}")
    log(f"the run took {meta['run_seconds']}s")
    if alarms:
        print("\n" + "!" * 72, *(f"!! {a}" for a in alarms), "!" * 72, sep="\n")
        return 1
    return 0


def service_env(database: str, **extra) -> dict:
    """The environment the service (and the floor, and the operator commands) run with on the
    bench's database `database`."""
    return dict(
        os.environ,
        DATABASE_URL=f"postgresql+psycopg://postgres@{HOST}:{PG_PORT}/{database}",
        APP_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        # The bench's few clients send a network's load: the limits would measure themselves.
        RATE_LIMIT_API="100000000 per minute",
        RATE_LIMIT_TOKEN="100000000 per minute",  # noqa: S106 (a budget, not a secret)
        **extra,
    )


def bench(stamp: str, args, cleanup: ExitStack) -> tuple[list[dict], list[dict], dict]:
    """Set everything up (registering its undoing on `cleanup`), measure each scenario, then
    run each step."""
    targets = {s["target"] for s in args.scenarios}
    if args.steps:
        targets.add("service")  # every step works on the service's database or API
    ensure_wrk()
    ensure_postgres()

    database = "bench_" + stamp.lower().replace("t", "_").rstrip("z")
    psql(f'CREATE DATABASE "{database}"')
    if args.keep_db:
        log(f"created database {database} (kept: --keep-db)")
    else:
        cleanup.callback(psql, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        log(f"created database {database}")

    env = service_env(database)
    meta = run_meta(stamp, args, env)
    servers, context, problems = {}, {}, {}

    if "service" in targets:
        run([tool("flask"), "--app", "app", "db", "upgrade"], timeout=120, env=env)
        context.update(seed(env))
        servers["service"] = Server("service", "app:app", env, RESULTS / f"{stamp}-service.log")
        cleanup.callback(servers["service"].stop)
        servers["service"].start("/healthz")
        seed_through_api(servers["service"].port, context, problems)

    if "floor" in targets:
        run([sys.executable, "-m", "bench.floor"], timeout=60, env=env)
        servers["floor"] = Server("floor", "bench.floor:app", env, RESULTS / f"{stamp}-floor.log")
        cleanup.callback(servers["floor"].stop)
        servers["floor"].start("/select")

    results = []
    for scenario in args.scenarios:
        if scenario.get("mix"):
            result = measure_mix(scenario, servers["service"], context, problems, results,
                                 env, args)
            results.append(result)
            continue
        log(
            f"{scenario['name']}: {scenario['method']} {scenario['path']} "
            f"({args.warmup}s warm-up, {args.rounds} x {args.duration}s measured, each followed "
            f"by its floor's{' and the statements floor' if 'statements' in scenario else ''})"
        )
        result = measure_in_rounds(scenario, servers, context, problems, args)
        if failed(result):
            log(f"!! {alarm_lines([result])[0]}")
        results.append(result)

    steps = []
    if args.steps:
        port = servers["service"].port
        steps = run_steps(args.steps, port, context, problems, env, args)
    return results, steps, meta
