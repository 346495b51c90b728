"""vde_switch, one per `mode = "vde"` network: started daemonized with its control directory
(what QEMU's -netdev vde,sock= names), pid file and management socket in kvmnet's state dir.
A switch is ours when its command line holds that control directory (never a pid file alone).
A switch with `-t TAP` creates the tap itself (it vanishes when the switch exits); kvmnet then
puts that tap on the joined bridge."""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import HostError
from . import netlink, procs, rtnl


def binary() -> str | None:
    return shutil.which("vde_switch")


def running_pid(pid_file: str, ctl: str) -> int | None:
    exe = binary()
    if exe is None:
        return None
    pid = procs.read_pid(pid_file)
    if pid and procs.is_ours(pid, exe, ctl):
        return pid
    found = procs.find(exe, ctl)
    return found[0] if found else None


def observe(pid_file: str, ctl: str) -> dict:
    return {"pid": running_pid(pid_file, ctl)}


def start(a: dict) -> None:
    exe = binary()
    if exe is None:
        raise HostError(f"network {a['network']}: vde_switch is not installed (apt-get install vde2)")
    if running_pid(a["pid_file"], a["ctl"]) is None:
        _remove(a["pid_file"])  # a stale pid file makes vde_switch -d fail silently (exit 0)
        argv = [exe, "-d", "-s", a["ctl"], "-p", a["pid_file"], "-M", a["mgmt"]]
        if a.get("tap"):
            argv += ["-t", a["tap"]]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if res.returncode != 0 or not procs.wait_until(lambda: running_pid(a["pid_file"], a["ctl"]) is not None):
            raise HostError(f"vde_switch for {a['network']} failed to start: {res.stderr.strip() or 'it exited'}")
    if a.get("tap"):
        if not procs.wait_until(lambda: rtnl.index_of(a["tap"]) is not None):
            raise HostError(f"vde_switch for {a['network']} made no tap {a['tap']}")
        netlink.set_link(a["tap"], master=a["bridge"], up=True)


def stop(a: dict) -> None:
    pid = running_pid(a["pid_file"], a["ctl"])
    if pid is not None:
        procs.terminate(pid)
    for path in (a["pid_file"], a["mgmt"]):
        _remove(path)
    shutil.rmtree(a["ctl"], ignore_errors=True)


def run(step) -> None:
    (start if step.op == "vde.start" else stop)(step.args)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
