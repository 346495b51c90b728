"""Start, reload, restart and stop kvmnet's dnsmasq instances; observe whether they run.

An instance is kvmnet's if it runs the dnsmasq binary with exactly `--conf-file=<its conf>`:
found through the pid file, or by scanning /proc when the pid file (or the state dir) is lost.
The binary is resolved here, at run time: records never name an executable.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess

from ..errors import HostError
from ..render.dnsmasq import reload_paths
from . import procs
from .dnsmasq_files import prepare_reload_files, read_text, remove_instance_files, write_bridge
from .files import write_private


def binary() -> str:
    return procs.which("dnsmasq") or "/usr/sbin/dnsmasq"


def unprivileged_user() -> str:
    for name in ("dnsmasq", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "root"


def user_group(user: str) -> str:
    """The primary group of `user`: dnsmasq runs with it (`group=`), and it may read the
    reloadable files."""
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return "root"


def running_pids(pid_file: str, conf: str) -> list[int]:
    marker, exe = f"--conf-file={conf}", binary()
    pid = procs.read_pid(pid_file)
    if pid and procs.is_ours(pid, exe, marker):
        return [pid]
    return procs.find(exe, marker)


def observe(conf: str, pid_file: str) -> dict:
    """{"pid", "conf_text", "hosts", "dhcp_hosts", "bridge": [name, ifindex] or None}."""
    pids = running_pids(pid_file, conf)
    out = {"pid": pids[0] if pids else None, "conf_text": None, "hosts": None, "dhcp_hosts": None,
           "bridge": None}
    if pids:
        files = reload_paths(conf)
        out.update(conf_text=read_text(conf), hosts=read_text(files["hosts"]),
                   dhcp_hosts=read_text(files["dhcp_hosts"]))
        seen = (read_text(files["bridge"]) or "").split()
        if len(seen) == 2 and seen[1].isdigit():
            out["bridge"] = [seen[0], int(seen[1])]
    return out


def stop(pid_file: str, conf: str) -> None:
    for pid in running_pids(pid_file, conf):
        # until it is gone or a zombie: its /proc exe link disappears earlier, while it exits,
        # and a restart would then find port 67 still bound
        procs.terminate(pid)
    try:
        os.unlink(pid_file)
    except FileNotFoundError:
        pass


def start(a: dict) -> None:
    stop(a["pid_file"], a["conf"])
    os.makedirs(os.path.dirname(a["conf"]), mode=0o700, exist_ok=True)
    write_private(a["conf"], a["conf_text"])
    prepare_reload_files(a["conf"], a.get("hosts") or "", a.get("dhcp_hosts") or "", _group(a))
    if not os.path.exists(a["leases"]):
        write_private(a["leases"], "")  # 0600 before dnsmasq creates it world-readable
    ifindex = _ifindex(a["bridge"])
    # --conf-file=ours means /etc/dnsmasq.conf and /etc/dnsmasq.d are never read.
    res = subprocess.run([binary(), f"--conf-file={a['conf']}"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=10)
    if res.returncode != 0:
        raise HostError(f"dnsmasq for {a['network']} failed to start: {res.stderr.strip()}{_holders()}")
    # the launcher exits after the daemon wrote its pid file: readiness without polling
    if not running_pids(a["pid_file"], a["conf"]):
        raise HostError(f"dnsmasq for {a['network']} exited right after starting; see its log")
    write_bridge(a["conf"], a["bridge"], ifindex)


def reload(a: dict) -> None:
    """New DNS records and static leases, read by the running instance on SIGHUP: same pid,
    DHCP and DNS never down."""
    pids = running_pids(a["pid_file"], a["conf"])
    if not pids:
        raise HostError(f"dnsmasq for {a['network']} is not running: nothing to reload")
    prepare_reload_files(a["conf"], a.get("hosts") or "", a.get("dhcp_hosts") or "", _group(a))
    for pid in pids:
        os.kill(pid, signal.SIGHUP)


def _group(a: dict) -> str:
    """The group the configuration names (steps of older records name none)."""
    return a.get("group") or user_group(unprivileged_user())


def _ifindex(bridge: str) -> int | None:
    try:
        return socket.if_nametoindex(bridge)  # in this network namespace, unlike /sys
    except OSError:
        return None


def _holders() -> str:
    holders = []
    for port, proto in ((53, "udp"), (53, "tcp"), (67, "udp")):
        who = procs.port_holders(port, proto)
        if who:
            holders.append(f"{proto} port {port} is held by {', '.join(who)}")
    return f" ({'; '.join(holders)})" if holders else ""


def run(step) -> None:
    a = step.args
    if step.op == "dnsmasq.stop":
        stop(a["pid_file"], a["conf"])
        if a.get("purge"):
            remove_instance_files(a["conf"], a.get("leases"))
    elif step.op == "dnsmasq.reload":
        reload(a)
    else:
        start(a)
