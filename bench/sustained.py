"""Sustained load: a network's mixed traffic at about 70% of its measured maximum, for minutes.

Run by the harness for the `sustained` scenario (scenarios.py). It finds the mix's maximum
throughput, calibrates a pause per connection that holds about 70% of it, then runs the long
measurement while sampling each worker's memory. Afterwards it checks what must hold: no 5xx,
p99 within 3 times the floor's, each worker's memory flat, the audit chain verifying, and every
audited request's events on the trail, exactly as many as its kind records.
"""

import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from common import api, log, run
from seeding import FAMILY, REFERRAL

BENCH = Path(__file__).resolve().parent
MIX_LUA = BENCH / "mix.lua"

#: kind -> audit events each answered request records: one, none for a directory read (no
#: family information), and two for a move: the transition, and the read of what its answer
#: showed of the family under consent (a disclosure of its own, as a send's answer is not:
#: the sender holds the family).
EVENTS_PER_REQUEST = {"token": 1, "directory": 0, "family": 1, "consent": 1, "send": 1,
                      "transition": 2, "read": 1, "audit": 1}
WEIGHTS = {"token": 4, "directory": 14, "family": 4, "consent": 4, "send": 10, "transition": 14,
           "read": 40, "audit": 10}


def _mix_lines(context: dict) -> list[str]:
    """The mix file for mix.lua: each kind, its headers and the objects it rotates over."""
    bearer = {name: f"Authorization: Bearer {context[key]}" for name, key in (
        ("custodian", "custodian_token"), ("provider", "provider_token"),
        ("directory", "token"), ("auditor", "auditor_token"))}
    json_type = "Content-Type: application/json"
    families = context["referral_families"]
    grant = {"organization_ids": [context["custodian_org_id"], context["provider_org_id"]],
             "purposes": ["referral"], "categories": ["identity"],
             "method": "written", "explained_in_language": "en", "interpreter_used": False,
             "revocation_rights_explained": True}
    now = time.time()
    signed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 90 * 86400))
    kinds = {
        "token": ("POST", [f"Authorization: Basic {context['basic']}",
                           "Content-Type: application/x-www-form-urlencoded"],
                  [("/oauth/token", "grant_type=client_credentials")]),
        "directory": ("GET", [bearer["directory"]], [("/api/v1/organizations?limit=20", "")]),
        "family": ("POST", [bearer["custodian"], json_type],
                   [("/api/v1/families", json.dumps(FAMILY))]),
        "consent": ("POST", [bearer["custodian"], json_type], [
            (f"/api/v1/families/{f['family_id']}/consents", json.dumps({
                **grant, "grantor": {"caregiver_id": f["caregiver_id"],
                                     "legal_authority": "parent"},
                "effective_at": signed, "expires_at": expires, "signed_at": signed}))
            for f in families]),
        "send": ("POST", [bearer["custodian"], json_type], [
            ("/api/v1/referrals", json.dumps({"family_id": f["family_id"],
                                              "to_organization_id": context["provider_org_id"],
                                              **REFERRAL}))
            for f in families]),
        "transition": ("POST", [bearer["provider"], json_type, "If-Match: *"], [
            (f"/api/v1/referrals/{r['working_referral_id']}/transitions",
             '{"status": "in_progress", "business_status": "engaged"}')
            for r in context["working_referrals"]]),
        "read": ("GET", [bearer["provider"]], [
            (f"/api/v1/referrals/{r['referral_id']}", "") for r in context["read_referrals"]]),
        "audit": ("GET", [bearer["auditor"]], [
            (f"/api/v1/audit/events?limit=50&family_id={f['family_id']}", "")
            for f in families]),
    }
    lines = []
    for kind, (method, headers, variants) in kinds.items():
        lines.append(f"K\t{kind}\t{WEIGHTS[kind]}\t{method}")
        lines += [f"H\t{kind}\t{header}" for header in headers]
        lines += [f"V\t{kind}\t{path}\t{body}" for path, body in variants]
    return lines


def _wrk(port: int, mix: Path, seconds: int, connections: int, delay_ms: int, run_name: str,
         args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "wrk.json"
        env = dict(os.environ, WRK_MIX=str(mix), WRK_DELAY_MS=str(delay_ms), WRK_RUN=run_name,
                   WRK_OUT=str(out))
        cmd = ["wrk", f"-t{args.threads}", f"-c{connections}", f"-d{seconds}s",
               f"--timeout={args.timeout}s", "-s", str(MIX_LUA), f"http://127.0.0.1:{port}/"]
        run(cmd, timeout=seconds + args.timeout + 60, env=env)
        return json.loads(out.read_text())


def _workers(master_pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True,
                           check=False)
    return [int(pid) for pid in found.stdout.split()]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """Every few seconds, the resident memory of each worker of the service."""

    def __init__(self, master_pid: int, every: float = 5.0):
        super().__init__(daemon=True)
        self.master_pid, self.every = master_pid, every
        self.samples: dict[int, list[tuple[float, float]]] = {}
        self.stopped = threading.Event()

    def run(self):
        start = time.monotonic()
        while not self.stopped.wait(self.every):
            for pid in _workers(self.master_pid):
                rss = _rss_mb(pid)
                if rss is not None:
                    self.samples.setdefault(pid, []).append((time.monotonic() - start, rss))

    def verdict(self, allowed_growth_mb: float = 8.0) -> dict:
        """Per worker: the median of its first and last minute's samples; flat when it grew by
        at most `allowed_growth_mb` (a worker replaced mid-run is named, and fails)."""
        workers = {}
        for pid, samples in self.samples.items():
            span = samples[-1][0] - samples[0][0] if samples else 0
            first = sorted(r for t, r in samples if t - samples[0][0] <= 60)
            last = sorted(r for t, r in samples if samples[-1][0] - t <= 60)
            if not first or not last:
                continue
            start_mb, end_mb = first[len(first) // 2], last[len(last) // 2]
            workers[str(pid)] = {"start_mb": round(start_mb, 1), "end_mb": round(end_mb, 1),
                                 "growth_mb": round(end_mb - start_mb, 1),
                                 "seconds": round(span)}
        flat = bool(workers) and all(w["growth_mb"] <= allowed_growth_mb
                                     for w in workers.values())
        return {"flat": flat, "allowed_growth_mb": allowed_growth_mb, "workers": workers}


def _trail_check(database_url: str, run_name: str, answers: dict, connections: int) -> dict:
    """Every answered (2xx) request of an audited kind has exactly its kind's events on the
    trail, found by its X-Request-ID; no refused or unaudited request left one."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT request_id, count(*) FROM audit_events WHERE request_id LIKE %s "
            "GROUP BY request_id", (f"mix-{run_name}-%",)).fetchall()
    events_by_kind: dict[str, list[int]] = {}
    for request_id, events in rows:
        kind = request_id.split("-")[2]
        events_by_kind.setdefault(kind, []).append(events)
    report, exact = {}, True
    for kind, per_request in EVENTS_PER_REQUEST.items():
        answered = sum(n for key, n in answers.items()
                       if key.split()[0] == kind and key.split()[1].startswith("2"))
        found = events_by_kind.get(kind, [])
        # Requests still in flight when wrk stopped were served, but their answers not
        # counted: at most one per connection more on the trail than answered.
        ok = (answered <= len(found) <= answered + connections if per_request else not found) \
            and all(n == per_request for n in found)
        exact &= ok
        report[kind] = {"answered": answered, "requests_on_trail": len(found),
                        "events_each": sorted(set(found)), "expected_each": per_request,
                        "exact": ok}
    return {"exact": exact, "by_kind": report}


def _verify(port: int, auditor_token: str) -> dict:
    verdict = api(port, "GET", "/api/v1/audit/verify", auditor_token)
    return {key: verdict.get(key) for key in ("valid", "checked", "first_bad_seq", "reason")}


def measure_sustained(scenario: dict, port: int, context: dict, args, *, service_pid: int,
                      database_url: str, floor_p99_ms: float | None) -> dict:
    """The whole sustained-load measurement; a dict for the report (never raises for the
    service's faults: they are findings)."""
    with tempfile.TemporaryDirectory() as tmp:
        mix = Path(tmp) / "mix.tsv"
        mix.write_text("\n".join(_mix_lines(context)) + "\n")
        c = args.connections
        log("sustained: the mix's maximum (20 s, no pause)")
        peak = _wrk(port, mix, 20, c, 0, "peak", args)
        target = scenario.get("load_fraction", 0.7) * peak["rps"]
        # c connections each waiting `pause` after every answer: rate = c / (latency + pause).
        pause = max(1, round(c * 1000 / target - peak["latency_ms"]["mean"] * 0.5))
        for attempt in range(3):
            probe = _wrk(port, mix, 10, c, pause, f"cal{attempt}", args)
            log(f"sustained: pause {pause} ms gives {probe['rps']:.0f} req/s "
                f"(target {target:.0f})")
            if abs(probe["rps"] - target) <= 0.07 * target:
                break
            latency = c * 1000 / max(probe["rps"], 1) - pause
            pause = max(1, round(c * 1000 / target - latency))
        run_name = uuid.uuid4().hex[:8]
        seconds = scenario.get("seconds", args.sustained_seconds)
        log(f"sustained: {seconds} s at a {pause} ms pause (run {run_name})")
        sampler = MemorySampler(service_pid)
        sampler.start()
        try:
            result = _wrk(port, mix, seconds, c, pause, run_name, args)
        finally:
            sampler.stopped.set()
            sampler.join()
    answers = result.pop("answers")
    server_errors = sum(n for key, n in answers.items() if key.split()[1].startswith("5"))
    p99_ratio = result["latency_ms"]["p99"] / floor_p99_ms if floor_p99_ms else None
    report = {
        "peak_rps": round(peak["rps"], 1), "target_rps": round(target, 1),
        "load_fraction": round(result["rps"] / peak["rps"], 2) if peak["rps"] else None,
        "pause_ms": pause, "seconds": seconds, "wrk": result, "answers": answers,
        "server_errors": server_errors,
        "p99_ratio_to_floor": round(p99_ratio, 2) if p99_ratio else None,
        "memory": sampler.verdict(),
        "chain": _verify(port, context["auditor_token"]),
        "trail": _trail_check(database_url, run_name, answers, c),
    }
    report["passed"] = (server_errors == 0 and p99_ratio is not None and p99_ratio <= 3
                        and report["memory"]["flat"] and report["chain"]["valid"]
                        and report["trail"]["exact"])
    return report
