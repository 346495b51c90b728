"""kvmnet commands run through the phase driver (lib/phases.py), their per-phase summaries and
the rows that show them; cProfile runs of a command; `-X importtime` parsing."""

from __future__ import annotations

import io
import json
import pstats
from pathlib import Path

from bench.lib.common import LIB, PY, REPO, CommandFailed, percentile, run, stats, timed
from bench.lib.report import Table

PHASES = str(LIB / "phases.py")

# the rows of a phase table, in the order a command goes through them
PHASE_ORDER = ["interpreter start", "imports", "config", "observe", "plan", "netlink", "sysctl", "firewall",
               "dnsmasq", "other steps", "state record", "verify (observe + plan again)", "other python"]


def kv_env(state: Path) -> dict:
    return {"KVMNET_STATE_DIR": str(state)}


def phases_run(args: list[str], state: Path, out: Path, expect_rc: int = 0) -> tuple[float, dict]:
    """kvmnet ARGS through the phase driver: (wall seconds, its JSON)."""
    out.unlink(missing_ok=True)
    wall = timed([PY, PHASES, str(out), "--", *args], env=kv_env(state), check=False)
    if not out.exists():  # the driver itself failed (a target kvmnet lost, an import error): say how
        res = run([PY, PHASES, str(out), "--", *args], env=kv_env(state), check=False)
        raise CommandFailed(f"phase driver for kvmnet {' '.join(args)} wrote no result: {res.stderr[-1500:]}")
    data = json.loads(out.read_text())
    if data["rc"] != expect_rc:
        raise CommandFailed(f"kvmnet {' '.join(args)} (phase driver): rc {data['rc']}: {data['output'][-800:]}")
    data["wall_s"] = wall
    return wall, data


def phase_summary(runs: list[dict]) -> dict:
    """Median per phase (ms) over the driver runs, plus everything needed to read them."""
    names = sorted({k for r in runs for k in r["phases_s"]})
    med = {k: round(percentile([r["phases_s"].get(k, 0.0) * 1000 for r in runs], 0.5), 3) for k in names}
    buckets = sorted({k for r in runs for k in r["buckets_s"]})
    bmed = {k: round(percentile([r["buckets_s"].get(k, 0.0) * 1000 for r in runs], 0.5), 3) for k in buckets}
    last = runs[-1]
    return {
        "n": len(runs),
        "phases_median_ms": med,
        "buckets_median_ms": bmed,
        "in_process_total": stats([r["total_s"] for r in runs]),
        "process_wall": stats([r["wall_s"] for r in runs]),
        "ops": last["ops"],
        "imports_top_ms": {k: round(v * 1000, 3) for k, v in last["imports_s"].items()},
        "wrapped": last["wrapped"],
    }


def bucket_sum(run_: dict, pred) -> float:
    return sum(v for k, v in run_["buckets_s"].items() if pred(k))


def work_after_imports(summary: dict) -> float:
    """In-process time of a command without its imports (and without the interpreter's start)."""
    return round(summary["in_process_total"]["median_ms"] - summary["phases_median_ms"].get("imports", 0.0), 3)


def phase_rows(t: Table, summaries: list[dict | None], start_ms: float | None) -> None:
    for phase in PHASE_ORDER:
        if phase == "interpreter start":
            t.add(phase + " (python -c pass)", *[start_ms for _ in summaries])
            continue
        vals = [s["phases_median_ms"].get(phase) if s else None for s in summaries]
        if any(v for v in vals):
            t.add(phase, *vals)
    t.add("in-process total (+ start = process)", *[s["in_process_total"]["median_ms"] if s else None for s in summaries])


def write_profile(prof: Path, dest: Path, title: str, limit: int = 30) -> None:
    buf = io.StringIO()
    st = pstats.Stats(str(prof), stream=buf)
    buf.write(f"# {title}\n# cProfile of one run (profiling roughly doubles the time of Python-heavy code)\n")
    buf.write("\n## by cumulative time\n")
    st.sort_stats("cumulative").print_stats(limit)
    buf.write("\n## by own time (tottime)\n")
    st.sort_stats("tottime").print_stats(limit)
    text = "\n".join(line.rstrip() for line in buf.getvalue().splitlines()
                     if line.strip() and not line.startswith(("   Ordered by", "   List reduced")))
    text = text.replace(str(REPO) + "/", "").replace(str(Path(PY).parent.parent) + "/lib/python3.11/site-packages/", "")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text + "\n")


def profile_kvmnet(args: list[str], state: Path, tmp: Path, dest: Path, title: str) -> None:
    prof = tmp / "run.prof"
    run([PY, "-m", "cProfile", "-o", str(prof), "-m", "kvmnet.cli", *args], env=kv_env(state))
    write_profile(prof, dest, title)


def importtime(stderr: str) -> dict:
    """`python -X importtime` output -> total, top-level modules, and the largest at any depth."""
    rows = []  # (name with its nesting indent, self µs, cumulative µs)
    for line in stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((parts[2][1:], int(parts[0]), int(parts[1])))
    top_level = [(m, c) for m, _, c in rows if not m.startswith(" ")]
    return {
        "total_ms": round(sum(c for _, c in top_level) / 1000, 3),
        "top_level_ms": {m: round(c / 1000, 3) for m, c in sorted(top_level, key=lambda x: -x[1])[:10]},
        "largest_any_depth_ms": {m.strip(): round(c / 1000, 3) for m, _, c in sorted(rows, key=lambda x: -x[2])[:15]},
        "kvmnet_modules_cumulative_ms": {m.strip(): round(c / 1000, 3) for m, _, c in rows if m.strip().startswith("kvmnet")},
        "netaddr_imported": any(m.strip().split(".")[0] == "netaddr" for m, _, _ in rows),
    }
