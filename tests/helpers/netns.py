"""Throwaway network namespaces for tests: created per test, always removed, with a snapshot
of everything kvmnet could change inside them (to prove destroy leaves no trace)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KVMNET = [sys.executable, "-m", "kvmnet.cli"]

# sysctls that change by themselves (counters, random seeds), not by kvmnet
_VOLATILE_SYSCTLS = ("net.netfilter.nf_conntrack_count", "net.ipv4.tcp_fastopen_key",
                     "net.core.netdev_rss_key")


# carrier state: the kernel sets these a moment after a link comes up, whoever brought it up
_CARRIER_FLAGS = ("LOWER_UP", "NO-CARRIER", "M-DOWN")


def is_root() -> bool:
    return os.geteuid() == 0


class Netns:
    def __init__(self, prefix: str = "kn-t"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.state_dir = Path(f"/tmp/{self.name}-state")
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.sh("ip link set lo up")

    def run(self, *argv: str, check: bool = True, env: dict | None = None, timeout: float = 60,
            **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check, text=True,
                              capture_output=True, env=env, timeout=timeout, **kw)

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("sh", "-c", script, check=check)

    def kvmnet(self, *args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
        full_env = dict(os.environ, KVMNET_STATE_DIR=str(self.state_dir), PYTHONPATH=str(ROOT))
        full_env.update(env or {})
        return self.run(*KVMNET, *args, env=full_env, check=check)

    def _xtables(self, *tools: str) -> str:
        """What the save tools list (nft-based and legacy), without counters and comments."""
        text = "".join(self.run(cmd, check=False).stdout for cmd in tools if shutil.which(cmd))
        return "\n".join(l for l in text.splitlines() if not l.startswith(("#", ":")) or l.startswith(":") and "[" not in l)

    def snapshot(self) -> dict:
        links = json.loads(self.run("ip", "-j", "-d", "link", "show").stdout)
        addrs = json.loads(self.run("ip", "-j", "addr", "show").stdout)
        routes = self.run("ip", "route", "show", "table", "all").stdout.splitlines()
        # IPv6 too (every table); an RA route's remaining lifetime is not state
        routes += [re.sub(r" expires \d+sec", "", r) for r in
                   self.run("ip", "-6", "route", "show", "table", "all").stdout.splitlines()]
        sysctls = [l for l in self.run("sysctl", "-a", "--pattern", r"^net\.", check=False).stdout.splitlines()
                   if not l.startswith(_VOLATILE_SYSCTLS)]
        nft = self.run("nft", "list", "ruleset", check=False).stdout if shutil.which("nft") else ""
        ipt, ip6t = (self._xtables(f"{family}-save", f"{family}-legacy-save") for family in ("iptables", "ip6tables"))
        pids = sorted(self.processes())
        files = sorted(str(p.relative_to(self.state_dir)) for p in self.state_dir.rglob("*")
                       if p.name != "lock") if self.state_dir.exists() else []
        return {
            "links": sorted((l["ifname"], l.get("linkinfo", {}).get("info_kind"), l["mtu"], l.get("address"),
                             l.get("master"), tuple(sorted(f for f in l["flags"] if f not in _CARRIER_FLAGS))) for l in links),
            "addrs": sorted((a["ifname"], i["local"], i["prefixlen"]) for a in addrs for i in a.get("addr_info", [])),
            "routes": sorted(r.replace(" linkdown", "") for r in routes),
            "sysctls": sysctls, "nft": nft, "iptables": ipt, "ip6tables": ip6t, "pids": pids, "files": files,
        }

    def processes(self) -> list[str]:
        """'pid comm' of every process in the namespace but the `ip` that lists them."""
        out = []
        for pid in self.run("ip", "netns", "pids", self.name, check=False).stdout.split():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm != "ip":
                out.append(f"{pid} {comm}")
        return out

    def kill_all(self) -> None:
        pids = self.run("ip", "netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    def delete(self) -> None:
        self.kill_all()
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def add_uplink(self, name: str = "eth0", cidr: str = "10.9.0.2/24", gateway: str | None = "10.9.0.1") -> None:
        """A NIC stand-in: this kernel has no dummy links, so one end of a veth pair."""
        self.sh(f"ip link add {name} type veth peer name {name}-peer && ip link set {name}-peer up && "
                f"ip addr add {cidr} dev {name} && ip link set {name} up")
        if gateway:
            self.sh(f"ip route add default via {gateway} dev {name}")
        self.settle()

    def settle(self, timeout: float = 5) -> None:
        """Wait until no IPv6 address is tentative (DAD adds routes asynchronously)."""
        deadline = time.monotonic() + timeout
        while self.run("ip", "-6", "addr", "show", "tentative").stdout.strip():
            if time.monotonic() > deadline:
                raise TimeoutError("IPv6 DAD did not settle")
            time.sleep(0.05)


def snapshot_diff(before: dict, after: dict) -> str:
    """Readable differences between two snapshots, for assertion messages."""
    out = []
    for key in before:
        if before[key] != after.get(key):
            b, a = before[key], after.get(key)
            if isinstance(b, list):
                out.append(f"{key}: gone {[x for x in b if x not in a]}; new {[x for x in a if x not in b]}")
            else:
                out.append(f"{key}: {b!r} -> {a!r}")
    return "\n".join(out)
