"""Start, restart and stop kvmnet's dnsmasq instances; observe whether they run."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time

from ..errors import HostError
from . import procs
from .files import write_private


def binary() -> str:
    return shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def unprivileged_user() -> str:
    for name in ("dnsmasq", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "root"


def running_pid(pid_file: str, conf: str, exe: str) -> int | None:
    pid = procs.read_pid(pid_file)
    if pid and procs.is_ours(pid, exe, f"--conf-file={conf}"):
        return pid
    return None


def observe(conf: str, pid_file: str, exe: str) -> dict:
    pid = running_pid(pid_file, conf, exe)
    text = None
    if pid:
        try:
            with open(conf) as f:
                text = f.read()
        except OSError:
            pass
    return {"pid": pid, "conf_text": text}


def stop(pid_file: str, conf: str, exe: str) -> None:
    pid = running_pid(pid_file, conf, exe)
    if pid:
        started = procs.start_time(pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        # wait until it is gone or a zombie: only then are its sockets closed (its /proc exe link
        # disappears earlier, while it exits, and a restart would then find port 67 still bound)
        while not procs.exited(pid, started):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)  # the same process (pid and start time checked)
                deadline += 3
            time.sleep(0.005)
    try:
        os.unlink(pid_file)
    except FileNotFoundError:
        pass


def start(a: dict) -> None:
    stop(a["pid_file"], a["conf"], a["exe"])
    os.makedirs(os.path.dirname(a["conf"]), mode=0o700, exist_ok=True)
    write_private(a["conf"], a["conf_text"])
    if not os.path.exists(a["leases"]):
        write_private(a["leases"], "")  # 0600 before dnsmasq creates it world-readable
    # --conf-file=ours means /etc/dnsmasq.conf and /etc/dnsmasq.d are never read.
    res = subprocess.run([a["exe"], f"--conf-file={a['conf']}"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=10)
    if res.returncode != 0:
        detail = res.stderr.strip()
        holders = []
        for port, proto in ((53, "udp"), (53, "tcp"), (67, "udp")):
            who = procs.port_holders(port, proto)
            if who:
                holders.append(f"{proto} port {port} is held by {', '.join(who)}")
        raise HostError(f"dnsmasq for {a['network']} failed to start: {detail}"
                        + (f" ({'; '.join(holders)})" if holders else ""))
    # the launcher exits after the daemon wrote its pid file: readiness without polling
    if running_pid(a["pid_file"], a["conf"], a["exe"]) is None:
        raise HostError(f"dnsmasq for {a['network']} exited right after starting; see its log")


def run(step) -> None:
    a = step.args
    if step.op == "dnsmasq.stop":
        stop(a["pid_file"], a["conf"], a["exe"])
        if a.get("purge"):
            for path in (a["conf"], a.get("leases")):
                if path:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
    else:
        start(a)
