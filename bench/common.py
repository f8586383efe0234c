"""What the harness and its steps share: paths, errors, commands, local HTTP, operator CLI."""

import base64
import http.client
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Only loopback: the harness must never load anything but the servers it started itself.
HOST = "127.0.0.1"


class BenchError(Exception):
    """The run cannot go on (setup failed, or a result is wrong); the message says why."""


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """A command from the repo's .venv, else from PATH."""
    local = ROOT / ".venv" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise BenchError(f"`{name}` not found in .venv/bin or PATH")
    return found


def run(cmd: list[str], *, timeout: float, env: dict | None = None, check: bool = True):
    """Run a command from the repo root with a time bound; raise BenchError when it fails."""
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from error
    if check and proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise BenchError(f"exit {proc.returncode}: {' '.join(cmd)}\n{output}")
    return proc


def request(port: int, method: str, path: str, headers=None, body=None, timeout=10.0):
    """One HTTP request to a local server: (status, body bytes). No proxies, unlike urllib."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def api(port: int, method: str, path: str, token: str, document=None, expect=200,
        headers=None) -> dict:
    """A JSON API call with a bearer token; raise BenchError unless it answers `expect`."""
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    body = None
    if document is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(document)
    status, payload = request(port, method, path, headers, body)
    if status != expect:
        raise BenchError(f"{method} {path} answered {status}, not {expect}: {payload[:500]!r}")
    return json.loads(payload)


def operator(env: dict, *args: str) -> dict:
    """Run a `flask --app app` operator command and return the JSON it prints."""
    proc = run([tool("flask"), "--app", "app", *args], timeout=120, env=env)
    try:
        return json.loads(proc.stdout)
    except ValueError as error:
        raise BenchError(
            f"`flask {' '.join(args[:2])}` did not print JSON on stdout: {proc.stdout[:500]!r}"
        ) from error


def basic_auth(client: dict) -> str:
    """The HTTP Basic credentials of a client `flask client create` printed."""
    pair = f"{client['client_id']}:{client['client_secret']}".encode()
    return base64.b64encode(pair).decode()


def issue_token(port: int, basic: str) -> str:
    headers = {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, body = request(port, "POST", "/oauth/token", headers, "grant_type=client_credentials")
    if status != 200:
        raise BenchError(f"POST /oauth/token answered {status}: {body[:300]!r}")
    try:
        return json.loads(body)["access_token"]
    except (ValueError, KeyError) as error:
        raise BenchError(f"POST /oauth/token gave no access_token: {body[:300]!r}") from error


def percentiles(samples_ms: list[float]) -> dict:
    """p50/p95/p99 (nearest rank) and mean of latencies in ms."""
    ordered = sorted(samples_ms)

    def rank(p):
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
    }


def emit(result: dict) -> None:
    """A step's result, as the one JSON document on its standard output."""
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
