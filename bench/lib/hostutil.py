"""Small reads and writes of the namespace a section runs in: links, sysctls, processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from bench.lib.common import read


def proc_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_pidfile(path: Path, marker: str) -> None:
    """Stop the dnsmasq whose pid is in `path`, only if its command line mentions `marker` (our
    temporary directory), and wait until it is gone."""
    try:
        pid = int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    if marker in cmdline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 3
        while proc_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.002)
    Path(path).unlink(missing_ok=True)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def master_of(name: str) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{name}/master"))
    except OSError:
        return None


def link_count() -> int:
    return len(os.listdir("/sys/class/net"))


def sysctl_read(path: str) -> str:
    return Path(f"/proc/sys/{path}").read_text().strip()


def sysctl_write(path: str, value: str) -> None:
    Path(f"/proc/sys/{path}").write_text(value)


def bridge_stp(bridge: str = "virbr0") -> dict:
    try:
        return {"stp_state": int(read(f"/sys/class/net/{bridge}/bridge/stp_state")),
                "forward_delay_s": int(read(f"/sys/class/net/{bridge}/bridge/forward_delay")) / 100}
    except (TypeError, ValueError):
        return {}
