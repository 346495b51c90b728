"""Each section in a network namespace made for it, removed afterwards with every process left in
it, also on failure, SIGTERM or Ctrl-C; this machine's own namespace is never touched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.lib.common import LIB, PY, log

WORKER = str(LIB / "worker.py")


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def ns_delete(name: str) -> None:
    """Stop every process in our namespace (all started by this run), then remove it."""
    res = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    pids = [int(x) for x in res.stdout.split() if x.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
            time.sleep(0.02)
        if not pids:
            break
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def stale_cleanup() -> None:
    """Namespaces and temp dirs of an earlier bench run that was SIGKILLed (its pid is gone)."""
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith("kvb") and "-" in name and name[3:].split("-")[0].isdigit():
            if not os.path.exists(f"/proc/{name[3:].split('-')[0]}"):
                log(f"removing stale namespace {name} (from a dead bench run)")
                ns_delete(name)
    for d in Path(tempfile.gettempdir()).glob("kvb*-*"):
        pid = d.name[3:].split("-")[0]
        if d.is_dir() and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)


def run_in_namespace(name: str, index: int, p: dict, peers: int, timeout: float) -> dict:
    """`ip netns exec kvb<PID>-<index> python worker.py NAME ...` (plus `peers` more namespaces,
    kvb<PID>-<index>a, b...): the section's result, or status "error" saying what went wrong."""
    ns = f"kvb{os.getpid()}-{index}"
    names = [ns, *[f"{ns}{x}" for x in "abcdefgh"[:peers]]]
    tmp = Path(tempfile.mkdtemp(prefix=f"kvb{os.getpid()}-{name}-"))
    os.chmod(tmp, 0o755)  # dnsmasq drops privileges; the seed's lease file lives here
    made = []
    try:
        for n in names:
            subprocess.run(["ip", "netns", "add", n], check=True, capture_output=True)
            made.append(n)
            subprocess.run(["ip", "netns", "exec", n, "ip", "link", "set", "lo", "up"], check=True)
        (tmp / "params.json").write_text(json.dumps(dict(p, tmp=str(tmp), peers=names[1:])))
        out = tmp / "out.json"
        log(f"{name}: running in namespace {ns}")
        proc = subprocess.run(["ip", "netns", "exec", ns, PY, WORKER, name, str(tmp / "params.json"), str(out)],
                              timeout=timeout)
        if out.exists():
            return json.loads(out.read_text())
        return {"status": "error", "error": f"worker exited {proc.returncode} without results"}
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    finally:
        for n in made:
            ns_delete(n)
        shutil.rmtree(tmp, ignore_errors=True)
