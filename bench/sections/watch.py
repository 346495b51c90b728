"""Section 8: `kvmnet watch` repair latency: from a drift (kvmnet's table deleted, the bridge
deleted, dnsmasq killed, the gateway address removed) to "in sync again" (watch's repair line,
which it prints after apply's own verification; `kvmnet check` confirms each trial, untimed),
and the CPU watch uses while nothing happens (it has no polling loop)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from bench.lib.common import KVMNET, NAT_TOML, CommandFailed, log, rotate, run, stats
from bench.lib.phaserun import kv_env
from bench.lib.report import Table, med, p95, target

NAME = "watch"
TITLE = "8. kvmnet watch: drift to in sync again"
DRIFTS = {  # name -> how the drift is made (t0: when it is done)
    "table deleted": ["nft", "delete", "table", "inet", "kvmnet_nat"],
    "bridge deleted": ["ip", "link", "del", "virbr0"],
    "dnsmasq killed": None,  # os.kill of the pid in its pid file
    "address removed": ["ip", "addr", "del", "192.168.122.1/24", "dev", "virbr0"],
}
IDLE = "idle"
REPAIR = re.compile(rb"nat: repaired in (\d+) ms")


def params(quick: bool, profiles: str | None) -> dict:
    return {"trials": 1 if quick else 20, "idle_s": 0.5 if quick else 3.0}


class _Watch:
    """kvmnet watch with its stderr read here, line by line, as it comes."""

    def __init__(self, st: Path):
        self.proc = subprocess.Popen([KVMNET, "watch"], env=dict(os.environ, **kv_env(st)),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.buf = b""
        self.next_line(b"watching ", 10)

    def next_line(self, want: bytes, timeout: float) -> tuple[bytes, float]:
        """The next stderr line containing `want`, and when it arrived."""
        deadline = time.perf_counter() + timeout
        fd = self.proc.stderr.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if want in line:
                    return line, time.perf_counter()
            left = deadline - time.perf_counter()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise CommandFailed(f"watch printed no {want!r} within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise CommandFailed(f"watch exited ({self.proc.wait()}) before {want!r}")
            self.buf += chunk

    def cpu_s(self) -> float:
        """User + system CPU of watch and its monitor children (`nft monitor`), in seconds."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> float:
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        return time.perf_counter() - t0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def drift(kind: str, st: Path) -> float:
    if DRIFTS[kind] is None:
        os.kill(int((st / "nat" / "dnsmasq-default.pid").read_text()), signal.SIGKILL)
    else:
        run(DRIFTS[kind])
    return time.perf_counter()


def trial(w: _Watch, kind: str, st: Path) -> float:
    t0 = drift(kind, st)
    _, t1 = w.next_line(b"nat: repaired in ", 10)
    time.sleep(0.3)  # the repair's own notifications: watch re-plans once more and finds nothing
    if run([KVMNET, "check", "--quiet", NAT_TOML], env=kv_env(st), check=False).returncode != 0:
        raise CommandFailed(f"after repairing {kind!r} the host is not in sync")
    return t1 - t0


def measure(p: dict) -> dict:
    st = Path(p["tmp"]) / "state"
    run([KVMNET, "apply", NAT_TOML], env=kv_env(st))
    w = _Watch(st)
    try:
        samples = {k: [] for k in DRIFTS}
        time.sleep(1.0)
        for r in range(p["trials"]):
            for kind in rotate(list(DRIFTS), r):
                samples[kind].append(trial(w, kind, st))
            log(f"watch: round {r + 1}/{p['trials']} done")
        time.sleep(1.0)  # settle: the kernel's late link notifications (linkwatch)
        c0, t0 = w.cpu_s(), time.monotonic()
        time.sleep(p["idle_s"])
        idle = {"seconds": round(time.monotonic() - t0, 2), "cpu_ms": round((w.cpu_s() - c0) * 1000, 1)}
    finally:
        stop_s = w.stop()
    run([KVMNET, "destroy", NAT_TOML], env=kv_env(st))
    res = {k: stats(v) for k, v in samples.items()}
    all_trials = [s / 1000 for k in DRIFTS for s in res[k]["samples_ms"]]
    res["all"] = stats(all_trials)
    res[IDLE] = idle
    res["sigterm_exit_s"] = round(stop_s, 3)
    res["trials"] = p["trials"]
    return res


def tables(s: dict) -> list[Table]:
    t = Table(f"{TITLE} ({s['trials']} trials per drift)", ["drift", "median ms", "p95 ms", "min ms", "max ms", "n"])
    for k in [*DRIFTS, "all"]:
        t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k]["max_ms"], str(s[k]["n"]))
    t.notes += [f"idle: {s[IDLE]['cpu_ms']} ms CPU (watch + nft monitor) over {s[IDLE]['seconds']} s without events",
                f"SIGTERM to exit: {s['sigterm_exit_s'] * 1000:.0f} ms",
                "time: drift command returned (or SIGKILL sent) -> watch's repair line read (after apply verified)"]
    return [t]


def targets(s: dict) -> list[dict]:
    full = s["trials"] >= 20
    out = []
    for k in DRIFTS:
        out.append(target(f"watch repair, {k}: median <= 300 ms", f"{med(s[k]):.0f} ms", "<= 300 ms",
                          med(s[k]) <= 300 if full else None, "" if full else "--quick"))
        out.append(target(f"watch repair, {k}: p95 <= 1 s", f"{p95(s[k]):.0f} ms", "<= 1000 ms",
                          p95(s[k]) <= 1000 if full else None, "" if full else "--quick"))
    per_s = s[IDLE]["cpu_ms"] / max(s[IDLE]["seconds"], 0.1)
    out.append(target("watch idle CPU ~0 (no polling loop)", f"{per_s:.1f} ms CPU/s", "<= 1 ms CPU/s", per_s <= 1))
    return out


def sanity(s: dict) -> list[str]:
    bad = [f"{k}: no trials" for k in DRIFTS if not s[k]["n"]]
    if s["sigterm_exit_s"] > 1.0:
        bad.append(f"watch took {s['sigterm_exit_s']} s to exit on SIGTERM")
    return bad
