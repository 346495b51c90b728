"""What importing one module costs a new process: `python -c "import M"` against
`python -c pass`, interleaved, medians of several runs (the README quotes these)."""

from __future__ import annotations

from bench.lib.common import PY, rotate, run, stats, timed

BASELINE = "python -c pass"


def label(module: str) -> str:
    return f"python -c 'import {module}'"


def import_costs(modules: list[str], runs: int) -> dict:
    """Per module: the process's wall stats, and its median over `python -c pass` (ms)."""
    variants = [BASELINE, *modules]
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(runs):
        for v in rotate(variants, r):
            argv = [PY, "-c", "pass"] if v == BASELINE else [PY, "-c", f"import {v}"]
            samples[v].append(timed(argv))
    base = stats(samples[BASELINE])
    out = {"runs": runs, BASELINE: base, "over_baseline_ms": {}, "over_baseline_cpu_ms": {}}
    for m in modules:
        out[label(m)] = stats(samples[m])
        out["over_baseline_ms"][m] = round(out[label(m)]["median_ms"] - base["median_ms"], 3)
        # CPU time: steadier than wall time on a shared machine (see common.Sample)
        out["over_baseline_cpu_ms"][m] = round(out[label(m)]["cpu_median_ms"] - base["cpu_median_ms"], 3)
    return out


def imports_module(importer: str, module: str) -> bool:
    """Whether importing `importer` loads `module` (e.g. does kvmnet.config pull in netaddr yet)."""
    code = f"import sys, {importer}; print({module!r} in sys.modules)"
    return run([PY, "-c", code]).stdout.strip() == "True"
