"""Shared helpers for the benchmark: paths, timing of one process, statistics, logging."""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
VENV_BIN = Path(os.environ.get("KVMNET_BENCH_VENV", REPO / ".venv")) / "bin"
PY = str(VENV_BIN / "python")
KVMNET = str(VENV_BIN / "kvmnet")
IFUP = str(VENV_BIN / "kvmnet-ifup")
IFDOWN = str(VENV_BIN / "kvmnet-ifdown")
LIB = BENCH / "lib"
SEED_IFUP = str(BENCH / "seed" / "qemu-ifup-NAT")

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class CommandFailed(RuntimeError):
    pass


def run(argv, *, env: dict | None = None, check: bool = True, input: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **env) if env else None
    res = subprocess.run(argv, env=full_env, input=input, text=True, capture_output=True, timeout=timeout)
    if check and res.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, argv))[:300]}: exit {res.returncode}: "
                            f"{(res.stderr or res.stdout).strip()[-800:]}")
    return res


def sh(script: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(["bash", "-c", script], check=check, timeout=timeout)


class Sample(float):
    """A wall time in seconds that also carries the CPU time (user + sys) of the process and of
    the children it waited for. On a loaded machine wall time includes waiting for a CPU;
    CPU time mostly does not (it excludes sleeping in the kernel too, e.g. RCU waits)."""

    cpu: float = math.nan

    @classmethod
    def of(cls, wall: float, cpu: float) -> "Sample":
        s = cls(wall)
        s.cpu = cpu
        return s


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(argv, *, env: dict | None = None, check: bool = True, input: str | None = None,
          timeout: float = 300, expect: str | None = None) -> float:
    """Wall time of one process (fork+exec to exit), in seconds. Output is captured, not shown.
    `expect`: a string that must appear in stdout+stderr (proves the run did what we think)."""
    full_env = dict(os.environ, **env) if env else None
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    c0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=full_env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(input=input, timeout=timeout)
    dt = Sample.of(time.perf_counter() - t0, _children_cpu() - c0)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, argv))[:300]}: exit {proc.returncode}: "
                            f"{(err or out).strip()[-800:]}")
    if expect is not None and expect not in (out + err):
        raise CommandFailed(f"{' '.join(map(str, argv))[:300]}: expected {expect!r} in its output, got: "
                            f"{(out + err).strip()[-800:]}")
    return dt


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def stats(samples: list[float], note: str | None = None) -> dict:
    """Seconds in, milliseconds out (rounded to µs)."""
    ms = [s * 1000 for s in samples]
    out = {"n": len(ms), "median_ms": round(percentile(ms, 0.5), 3), "p95_ms": round(percentile(ms, 0.95), 3),
           "min_ms": round(min(ms), 3) if ms else None, "max_ms": round(max(ms), 3) if ms else None,
           "samples_ms": [round(x, 3) for x in ms]}
    cpu = [s.cpu * 1000 for s in samples if isinstance(s, Sample) and not math.isnan(s.cpu)]
    if cpu and len(cpu) == len(ms):
        out["cpu_median_ms"] = round(percentile(cpu, 0.5), 3)
        out["cpu_min_ms"] = round(min(cpu), 3)  # the least disturbed run: disturbance only adds CPU time
    if note:
        out["note"] = note
    return out


def rotate(items: list, r: int) -> list:
    """The variants in a different order each repetition, so slow drift in machine load does not
    always hit the same one."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def read(path: str | Path, default: str | None = None) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return default


NAT_TOML = str(REPO / "topologies" / "nat.toml")
