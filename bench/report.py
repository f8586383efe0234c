"""The benchmark's report: a plot of each scenario's throughput and p99 against its floor, and
the Markdown that shows it (bench/REPORT.md, written by `bench/run --report`)."""

import importlib
import subprocess
import sys
from pathlib import Path

from common import log


def _pyplot():
    """matplotlib's pyplot without a display; installed into this interpreter when missing."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        log("matplotlib is missing: installing it for the report's plot")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib>=3.8"],
                       check=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(results: list[dict], path: Path) -> bool:
    """Two panels, one bar per service scenario: req/s as a multiple of its floor's (with the
    target, and the floor sending the scenario's statements), and p99 as a multiple of its
    floor's (with the 3x bound). False when there is nothing to plot."""
    measured = [r for r in results if "rps_ratio" in r]
    if not measured:
        return False
    plt = _pyplot()
    names = [r["name"] for r in measured]
    fig, (rps, p99) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.8), sharey=True)
    colors = ["#3b7d3b" if r.get("target_met") else "#b23b3b" if r.get("target_met") is False
              else "#777777" for r in measured]
    rps.barh(names, [r["rps_ratio"] for r in measured], color=colors)
    for y, r in enumerate(measured):
        if r.get("min_rps_ratio") is not None:
            rps.plot([r["min_rps_ratio"]] * 2, [y - 0.4, y + 0.4], color="black", linewidth=2)
        if "statements_ceiling" in r:
            rps.plot([r["statements_ceiling"]] * 2, [y - 0.4, y + 0.4], color="#e08a00",
                     linewidth=2, linestyle=(0, (2, 1)))
        rps.text(r["rps_ratio"] + 0.01, y, f"{r['rps_ratio']:.2f} ({r['wrk']['rps']:.0f}/s)",
                 va="center", fontsize=8)
    rps.axvline(1.0, color="grey", linestyle=":")
    rps.set_xlabel("throughput, x the floor's\n(black tick: target; orange: the floor sending "
                   "the same statements)")
    rps.invert_yaxis()
    p99.barh(names, [r.get("p99_ratio", 0) for r in measured], color="#4a6fa5")
    p99.axvline(3.0, color="black", linestyle="--", linewidth=1)
    for y, r in enumerate(measured):
        if "p99_ratio" in r:
            p99.text(r["p99_ratio"] + 0.05, y,
                     f"{r['p99_ratio']:.2f} ({r['wrk']['latency_ms']['p99']:.0f} ms)",
                     va="center", fontsize=8)
    p99.set_xlabel("p99 latency, x the floor's (dashed: 3x)")
    fig.suptitle("Service scenarios against the bare-stack floor, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def sustained_lines(results: list[dict]) -> list[str]:
    """The sustained load's own findings, for the Markdown."""
    found = next((r["sustained"] for r in results if "sustained" in r), None)
    if found is None:
        return []
    trail = found["trail"]["by_kind"]
    memory = found["memory"]["workers"]
    growth = max((w["growth_mb"] for w in memory.values()), default=None)
    return [
        "", "## Sustained load", "",
        f"- {found['seconds']} s at {found['wrk']['rps']:.0f} req/s, "
        f"{found['load_fraction']:.0%} of the mix's measured maximum "
        f"({found['peak_rps']:.0f} req/s), pause {found['pause_ms']} ms per connection",
        f"- 5xx: {found['server_errors']}; p99 {found['wrk']['latency_ms']['p99']:.0f} ms, "
        f"{found['p99_ratio_to_floor']}x the floor's",
        f"- worker memory: {len(memory)} workers, largest growth {growth} MB "
        f"({'flat' if found['memory']['flat'] else 'NOT flat'})",
        f"- chain after the run: {'valid' if found['chain']['valid'] else 'INVALID'}, "
        f"{found['chain']['checked']} events checked",
        "- audited requests on the trail, by kind (answered / on the trail / events each): "
        + "; ".join(f"{kind} {t['answered']}/{t['requests_on_trail']}/"
                    f"{','.join(map(str, t['events_each'])) or '-'}"
                    for kind, t in trail.items())
        + (" — exact" if found["trail"]["exact"] else " — NOT exact"),
        f"- result: {'PASS' if found['passed'] else 'FAIL'}",
    ]
