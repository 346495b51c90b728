"""bench/run: kvmnet against the seed's recipe and raw tools, in throwaway network namespaces.

Runs the sections of bench/sections/ in order, each in a namespace made for it (lib/namespaces.py),
then writes what they measured, their tables and their targets.

    bench/run [--quick] [--sections a,b] [--out DIR] [--no-profiles] [--report JSON]

Prints the tables, writes DIR/latest.json and DIR/latest.md (--quick: DIR/quick.*), and with
profiles DIR/profiles/*.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: `bench.` imports
from bench.lib.common import BENCH, LIB, PY, REPO, log  # noqa: E402
from bench.lib.namespaces import Interrupted, on_signal, run_in_namespace, stale_cleanup  # noqa: E402
from bench.lib.phases import target_modules  # noqa: E402
from bench.lib.report import status_table, targets_table  # noqa: E402
from bench.sections import BY_NAME, SECTIONS  # noqa: E402

TOOLS = ("ip", "nft", "iptables-nft", "iptables-nft-restore", "iptables-legacy", "dnsmasq", "stdbuf")


def run_section(section, index: int, p: dict, quick: bool) -> dict:
    why = section.skip_reason(p) if hasattr(section, "skip_reason") else p.get("skip")
    if why:
        return {"status": "skipped", "reason": why}
    peers = section.peers(p) if hasattr(section, "peers") else 0
    return run_in_namespace(section.NAME, index, p, peers, timeout=120 if quick else 900)


def finish(results: dict) -> list:
    """Derived parts (targets, top-level fields) and the tables; prints them."""
    tabs, results["targets"] = [], []
    for section in SECTIONS:
        res = results["sections"].get(section.NAME)
        if res is None:
            continue
        if res.get("status") != "ok":
            tabs.append(status_table(section.TITLE, res))
            continue
        tabs += section.tables(res)
        results["targets"] += section.targets(res)
        if hasattr(section, "top_level"):
            results.update(section.top_level(res))
    print()
    for t in [*tabs, targets_table(results["targets"])]:
        print(t.text())
        print()
    return tabs


def markdown(results: dict, tabs: list) -> str:
    m = results["meta"]
    out = [f"### kvmnet benchmarks ({'--quick smoke run' if m['quick'] else 'bench/run'}, {m['date']})", "",
           f"{m['cpus']} CPUs, kernel {m['kernel']}, load average {m['loadavg_before']} before / {m['loadavg_after']} after; "
           f"kvmnet at {m['git']}. Medians of repeated runs, interleaved, all in one run of `bench/run`, "
           "each section in its own throwaway network namespace. Times in ms.", ""]
    for t in [*tabs, targets_table(results["targets"])]:
        out += [t.markdown(), ""]
    return "\n".join(out)


def meta(quick: bool) -> dict:
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "kvmnet"], capture_output=True, text=True).stdout
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "host": platform.node(),
        "kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "git": git + (" + uncommitted changes in kvmnet/" if dirty.strip() else ""),
        "bytecode": "cached under PYTHONPYCACHEPREFIX (a temporary directory), PYTHONDONTWRITEBYTECODE unset",
        "tools": {t: (shutil.which(t) is not None) for t in ("nft", "iptables-nft", "iptables-legacy", "dnsmasq", "iperf3")},
    }


def bytecode_cache() -> str:
    """Timed Python processes read compiled bytecode from a cache of ours, as an installed kvmnet
    would. This environment sets PYTHONDONTWRITEBYTECODE=1 and kvmnet/ has no __pycache__, so
    otherwise every kvmnet process would compile kvmnet's sources first (the hooks section
    measures that case too). PYTHONPYCACHEPREFIX keeps the cache out of the repository."""
    prefix = tempfile.mkdtemp(prefix=f"kvb{os.getpid()}-pycache-")
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "kvmnet")], capture_output=True)
    # importing only (no network access): fills the cache for the libraries kvmnet loads
    modules = ["kvmnet.cli", "kvmnet.hook", *target_modules(), "pyroute2", "iptc", "netaddr"]
    subprocess.run([PY, "-c", "import " + ", ".join(modules)], capture_output=True)
    return prefix


def preflight(sections: list[str]) -> str | None:
    """Why the run cannot start, or None."""
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing or not os.path.exists(PY):
        return f"missing {', '.join(missing) or PY} (scripts/setup installs them)"
    unknown = set(sections) - set(BY_NAME)
    if unknown:
        return f"unknown sections {sorted(unknown)}"
    # the phase driver's targets: a function kvmnet moved fails here, named, before any namespace
    check = subprocess.run([PY, str(LIB / "phases.py"), "--check"], capture_output=True, text=True)
    return None if check.returncode == 0 else check.stderr.strip()


def measure_all(args, sections: list[str], prof_dir: str | None) -> dict:
    prm = {s.NAME: s.params(args.quick, prof_dir) for s in SECTIONS}
    results = {"meta": meta(args.quick), "params": {k: prm[k] for k in sections}, "sections": {}}
    t0 = time.monotonic()
    try:
        for i, name in enumerate(sections):
            ts = time.monotonic()
            res = run_section(BY_NAME[name], i, prm[name], args.quick)
            res.setdefault("section_wall_s", round(time.monotonic() - ts, 2))
            results["sections"][name] = res
            log(f"{name}: {res.get('status')} in {time.monotonic() - ts:.1f} s"
                + (f": {res.get('error') or res.get('reason')}" if res.get("status") != "ok" else ""))
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({exc}); namespaces removed; writing what was measured")
        results["meta"]["interrupted"] = True
    results["meta"]["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results["meta"]["wall_s"] = round(time.monotonic() - t0, 1)
    return results


def write(results: dict, tabs: list, json_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    json_path.with_suffix(".md").write_text(markdown(results, tabs))
    print(f"wrote {json_path} and {json_path.with_suffix('.md')}")


def arguments():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke mode: 1-3 repetitions, small N (CI; < 60 s)")
    ap.add_argument("--sections", default=",".join(BY_NAME), help=f"comma-separated subset of {','.join(BY_NAME)}")
    ap.add_argument("--out", default=None, help="results directory (default bench/results)")
    ap.add_argument("--no-profiles", action="store_true", help="skip the cProfile runs of the full mode")
    ap.add_argument("--report", metavar="JSON", help="measure nothing: print the tables and targets of an earlier "
                    "run's JSON again and rewrite its .md (and the derived fields of the JSON)")
    return ap.parse_args()


def main() -> int:
    args = arguments()
    if args.report:
        results = json.loads(Path(args.report).read_text())
        write(results, finish(results), Path(args.report))
        return 0
    sections = [s for s in args.sections.split(",") if s]
    why = preflight(sections)
    if why:
        print(f"bench/run: {why}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else BENCH / "results"
    stem = "quick" if args.quick and not args.out else "latest"
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    stale_cleanup()
    pycache = bytecode_cache()
    try:
        results = measure_all(args, sections, None if args.no_profiles else str(out_dir / "profiles"))
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    tabs = finish(results)
    print(f"\ntotal {results['meta']['wall_s']} s")
    write(results, tabs, out_dir / f"{stem}.json")
    failed = [n for n, s in results["sections"].items() if s.get("status") == "error"]
    return 1 if failed or results["meta"].get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
