"""kvmnet's own FRR instance (zebra + bgpd) per topology and host, supervised like its dnsmasq:
its configuration, pid files and sockets live in the topology's state dir (never /etc/frr, and a
system FRR is neither used nor touched); an instance is kvmnet's only if it runs FRR's binary with
`-f <its config>`. The daemons run as root (zebra `-u root -g frrvty`, bgpd `-S`): as user frr they
could not reach the 0700 state dir.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess

from ..errors import HostError
from ..render import frr as frr_conf
from . import procs
from .files import write_private

FRR_LIB = "/usr/lib/frr"
VTYSH = "/usr/bin/vtysh"
CRASH_DIR = "/var/tmp/frr"  # where a killed FRR daemon leaves <daemon>.<pid>/


def available() -> bool:
    return all(os.access(os.path.join(FRR_LIB, d), os.X_OK) for d in frr_conf.DAEMONS)


def _exe(daemon: str) -> str:
    return os.path.join(FRR_LIB, daemon)


def _pid(daemon: str, p: dict) -> int | None:
    marker = p[f"{daemon}_conf"]
    pid = procs.read_pid(p[f"{daemon}_pid"])
    if pid and procs.is_ours(pid, _exe(daemon), marker):
        return pid
    found = procs.find(_exe(daemon), marker)
    return found[0] if found else None


def observe(topo_dir: str) -> dict:
    """{"zebra": pid or None, "bgpd": ..., "zebra_conf": text, "bgpd_conf": text (of a running instance)}."""
    p = frr_conf.paths(topo_dir)
    out = {"available": available()}
    for daemon in frr_conf.DAEMONS:
        pid = _pid(daemon, p)
        out[daemon] = pid
        text = None
        if pid:
            try:
                with open(p[f"{daemon}_conf"]) as f:
                    text = f.read()
            except OSError:
                pass
        out[f"{daemon}_conf"] = text
    out["others"] = _other_bgpds(p["bgpd_conf"])
    return out


def _other_bgpds(ours: str) -> list[str]:
    """Any other bgpd in this network namespace (another topology's, or the system's FRR): two
    would compete for TCP port 179. Each as "PID (its -f config, or its default)"."""
    exe = os.path.realpath(_exe("bgpd"))
    try:
        here = os.readlink("/proc/self/ns/net")
    except OSError:
        return []
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.path.realpath(f"/proc/{entry}/exe") != exe or os.readlink(f"/proc/{entry}/ns/net") != here:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        conf = argv[argv.index("-f") + 1] if "-f" in argv[:-1] else "/etc/frr"
        if conf != ours:
            found.append(f"{entry} ({conf})")
    return found


def start(a: dict) -> None:
    p = frr_conf.files(a["dir"])
    stop(a)
    if not available():
        raise HostError(f"FRR is not installed ({FRR_LIB}/zebra, bgpd): install Debian's `frr` for control = \"evpn\"")
    os.makedirs(p["dir"], mode=0o700, exist_ok=True)
    write_private(p["zebra_conf"], frr_conf.zebra_conf(a["host"]))
    write_private(p["bgpd_conf"], frr_conf.bgpd_conf(a["host"], a["listen"], a["peers"]))
    for daemon, extra in (("zebra", ["-u", "root", "-g", "frrvty"]), ("bgpd", ["-S", "-l", a["listen"]])):
        # -P 0: no TCP vty; vtysh reaches the daemons through --vty_socket only
        argv = [_exe(daemon), "-d", "-f", p[f"{daemon}_conf"], "-i", p[f"{daemon}_pid"], "-z", p["zserv"],
                "--vty_socket", p["dir"], "-P", "0", *extra]
        res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=20)
        if res.returncode != 0 or not procs.wait_until(lambda: _pid(daemon, p)):
            stop(a)
            raise HostError(f"FRR {daemon} failed to start: {(res.stderr or res.stdout).strip() or 'it exited'}")
        if daemon == "zebra" and not procs.wait_until(lambda: os.path.exists(p["zserv"])):
            stop(a)
            raise HostError("FRR zebra did not open its socket")


def stop(a: dict) -> None:
    """Stop bgpd, then zebra (SIGTERM, SIGKILL after 3 s); remove their files and crash dirs."""
    p = frr_conf.files(a["dir"])
    for daemon in reversed(frr_conf.DAEMONS):
        pid = _pid(daemon, p)
        if pid is None:
            continue
        procs.terminate(pid)
        if _crash_dir_trusted():
            _remove_tree(os.path.join(CRASH_DIR, f"{daemon}.{pid}"))
    if a.get("purge", True):
        _remove_tree(p["dir"])


def _remove_tree(path: str) -> None:
    """Remove a directory tree without following a symlink anywhere in it: shutil.rmtree walks
    by descriptor (O_NOFOLLOW, dir_fd), so an entry swapped for a link to /etc mid-walk is
    unlinked as a link, never walked into. A path that is a symlink, or is missing, is left."""
    if not shutil.rmtree.avoids_symlink_attacks:  # (Linux's rmtree does)
        raise HostError(f"cannot remove {path} safely on this platform")
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        if os.path.isdir(path) and not os.path.islink(path):  # (a link, or not a directory: not ours, left)
            raise


def _crash_dir_trusted() -> bool:
    """/var/tmp/frr is FRR's (root's or frr's, writable by nobody else): only then are the crash
    dirs in it the daemons' own. FRR makes it 0700 but keeps a mode it finds (a user who made it
    0777 first could swap entries in it)."""
    try:
        st = os.lstat(CRASH_DIR)
    except OSError:
        return False
    owners = {0}
    try:
        owners.add(pwd.getpwnam("frr").pw_uid)
    except KeyError:
        pass
    return stat.S_ISDIR(st.st_mode) and st.st_uid in owners and not st.st_mode & 0o022


def run(step) -> None:
    (start if step.op == "frr.start" else stop)(step.args)


def sessions(topo_dir: str) -> list[dict]:
    """The instance's BGP EVPN sessions: [{"peer", "state", "uptime", "prefixes"}], from vtysh's json."""
    p = frr_conf.paths(topo_dir)
    if not os.path.isdir(p["dir"]):
        return []
    try:
        res = subprocess.run([VTYSH, "--vty_socket", p["dir"], "-d", "bgpd", "-c", "show bgp l2vpn evpn summary json"],
                             capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        peers = json.loads(res.stdout or "{}").get("peers", {})
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [{"peer": peer, "state": v.get("state"), "uptime": v.get("peerUptime"),
             "prefixes": v.get("pfxRcd")} for peer, v in sorted(peers.items())]
