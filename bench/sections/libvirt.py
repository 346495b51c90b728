"""Section 8: kvmnet next to libvirt itself. The same network (tests/libvirt/data/nat.xml: NAT,
a DHCP range, a static host, a domain, MTU 1400, STP off) started by a private libvirtd (network
driver only; in the peer namespace "a" plus a private mount namespace: tests/libvirt/libvirtd.py)
and, imported by `kvmnet import libvirt`, applied by kvmnet in the section's namespace; start,
no-op, teardown and a new client's first DHCP lease (busybox udhcpc in peer namespace "b", with a
veth port on each side's bridge), interleaved in one run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.lib.common import KVMNET, REPO, log, rotate, run, stats, timed
from bench.lib.report import Table, ratio, target

sys.path.insert(0, str(REPO / "tests" / "libvirt"))
import libvirtd  # noqa: E402  (the tests' private-daemon helper: one way to run libvirtd)

NAME = "libvirt"
TITLE = "8. kvmnet next to libvirt 9 (the same NAT network, tests/libvirt/data/nat.xml)"
XML = REPO / "tests" / "libvirt" / "data" / "nat.xml"
NET, BRIDGE = "lvnat", "lvbr1"

# result keys: (libvirt's command, kvmnet's command) per step
STEPS = {
    "start": ("virsh net-start", "kvmnet apply (cold)"),
    "no-op": ("virsh net-start of the active network (refused)", "kvmnet apply (in sync)"),
    "teardown": ("virsh net-destroy", "kvmnet destroy"),
    "first lease": ("udhcpc on libvirt's bridge", "udhcpc on kvmnet's bridge"),
}
SIDES = ("libvirt", "kvmnet")
# kvmnet with pyroute2 imported in the command's own process at its first change, as before the
# netlink worker (kvmnet/host/netlink_worker.py): start and teardown only, in the same rotation
INPROC = "kvmnet, pyroute2 in-process"


def params(quick: bool, profiles: str | None) -> dict:
    if quick:
        return {"skip": "libvirt: starts a libvirtd and waits for its dnsmasq's ~3 s ping per lease (full runs only)"}
    return {"reps": 7}


def skip_reason(p: dict) -> str | None:
    return p.get("skip") or libvirtd.missing()


def peers(p: dict) -> int:
    return 2  # a: libvirtd's namespace; b: the DHCP client


class _Peer:
    """A namespace the driver made: what libvirtd.Libvirtd needs of it."""

    def __init__(self, name: str):
        self.name = name

    def kill_all(self) -> None:
        for pid in run(["ip", "netns", "pids", self.name], check=False).stdout.split():
            run(["kill", "-9", pid], check=False)


class Twins:
    def __init__(self, p: dict):
        self.tmp = Path(p["tmp"])
        self.lv_ns, self.client_ns = p["peers"]
        self.daemon = libvirtd.Libvirtd(_Peer(self.lv_ns))
        self.toml = self.tmp / "nat.toml"
        self.env = dict(os.environ, KVMNET_STATE_DIR=str(self.tmp / "state"), PYTHONPATH=str(REPO))
        self.samples = {(step, side): [] for step in STEPS for side in SIDES} | {
            ("start", INPROC): [], ("teardown", INPROC): []}
        self.leases = 0

    def setup(self) -> None:
        run([KVMNET, "import", "libvirt", str(XML), "-o", str(self.toml)])
        self.daemon.start()
        self.daemon.virsh("net-define", str(XML))
        # the client's two ports: cl-lv on libvirt's bridge, cl-kv on kvmnet's (attached once they exist)
        run(["ip", "link", "add", "cp-kv", "type", "veth", "peer", "name", "cl-kv", "netns", self.client_ns])
        run(["ip", "netns", "exec", self.lv_ns, "ip", "link", "add", "cp-lv", "type", "veth", "peer", "name",
             "cl-lv", "netns", self.client_ns])

    def one(self, side: str) -> None:
        s = self.samples
        if side == "libvirt":
            s["start", side].append(self._virsh("net-start", NET))
            s["no-op", side].append(self._virsh("net-start", NET, fails=True))
            s["first lease", side].append(self._lease("cl-lv", ["ip", "netns", "exec", self.lv_ns]))
            s["teardown", side].append(self._virsh("net-destroy", NET))
        else:  # kvmnet, or kvmnet with pyroute2 in-process (start and teardown only)
            env = self.env if side == "kvmnet" else dict(self.env, KVMNET_NETLINK_WORKER="0")
            s["start", side].append(timed([KVMNET, "apply", str(self.toml)], env=env, expect="applied"))
            if side == "kvmnet":
                s["no-op", side].append(timed([KVMNET, "apply", str(self.toml)], env=env, expect="in sync"))
                s["first lease", side].append(self._lease("cl-kv", []))
            s["teardown", side].append(timed([KVMNET, "destroy", str(self.toml)], env=env))

    def _virsh(self, *args: str, fails: bool = False) -> float:
        t = timed(["virsh", "-q", "-c", self.daemon.uri, *args], check=not fails)
        if fails and self.daemon.virsh(*args, check=False).returncode == 0:
            raise RuntimeError(f"virsh {' '.join(args)} was expected to fail")
        return t

    def _lease(self, port: str, in_host: list[str]) -> float:
        """A MAC dnsmasq has not seen, the port onto the bridge, then udhcpc until the lease."""
        self.leases += 1
        run([*in_host, "ip", "link", "set", f"cp-{port[3:]}", "master", BRIDGE, "up"])
        client = ["ip", "netns", "exec", self.client_ns]
        run([*client, "ip", "link", "set", port, "address", f"52:54:00:be:{self.leases // 256:02x}:{self.leases % 256:02x}",
             "up"])
        return timed([*client, "busybox", "udhcpc", "-i", port, "-f", "-q", "-n", "-t", "10", "-T", "1",
                      "-s", "/bin/true"], timeout=60, expect="obtained")

    def close(self) -> None:
        run([KVMNET, "destroy", str(self.toml)], env=self.env, check=False)
        self.daemon.stop()


def measure(p: dict) -> dict:
    t = Twins(p)
    try:
        t.setup()
        t.one("libvirt")  # warm-up, not kept: caches, libvirt's first network start
        t.one("kvmnet")
        t.one(INPROC)
        t.samples = {k: [] for k in t.samples}
        for r in range(p["reps"]):
            for side in rotate([*SIDES, INPROC], r):
                t.one(side)
            log(f"libvirt: rep {r + 1}/{p['reps']} done")
    finally:
        t.close()
    return {f"{step}: {side}": stats(v) for (step, side), v in t.samples.items()} | {
        "libvirt_version": subprocess.run(["virsh", "--version"], capture_output=True, text=True).stdout.strip()}


def tables(s: dict) -> list[Table]:
    t = Table(TITLE, ["step", "libvirt", "median ms (range)", "kvmnet", "median ms (range)", "kvmnet / libvirt"])
    for step, (lv_cmd, kv_cmd) in STEPS.items():
        lv, kv = s[f"{step}: libvirt"], s[f"{step}: kvmnet"]
        t.add(step, lv_cmd, _cell(lv), kv_cmd, _cell(kv), ratio(kv["median_ms"], lv["median_ms"]))
        if f"{step}: {INPROC}" in s:
            old = s[f"{step}: {INPROC}"]
            t.add("", "", "", f"{kv_cmd}, pyroute2 in-process", _cell(old), ratio(old["median_ms"], lv["median_ms"]))
    t.notes += [
        f"libvirt {s.get('libvirt_version', '?')}: libvirtd (network driver only) in its own network and mount "
        "namespaces; virsh talks to it over its private socket (each virsh is a new process: client start-up "
        "is included, as kvmnet's is)",
        "interleaved: each repetition runs libvirt's start, no-op, lease, teardown and kvmnet's, in rotating order",
        "no-op: libvirt has no re-apply; `virsh net-start` of an active network is what an idempotent script runs "
        "(it fails: already active); kvmnet's re-apply compares the host with the file and writes nothing",
        f"{INPROC}: KVMNET_NETLINK_WORKER=0, so pyroute2 loads in the command's own process at its first "
        "change (as before the netlink worker); by default a command that will change links forks a worker "
        "that loads it on the other core while kvmnet reads, observes and plans (kvmnet/host/netlink_worker.py)",
        "first lease: a new MAC each time, busybox udhcpc (via ip netns exec) until the ACK; libvirt's dnsmasq "
        "pings the address for ~3 s before offering it, kvmnet's has no-ping; bridge STP off on both",
    ]
    return [t]


def _cell(d: dict) -> str:
    return f"{d['median_ms']:,.0f} ({d['min_ms']:,.0f}-{d['max_ms']:,.0f})"


def targets(s: dict) -> list[dict]:
    lv, kv = s["start: libvirt"]["median_ms"], s["start: kvmnet"]["median_ms"]
    return [target("libvirt: kvmnet cold apply (whole process) <= 2x virsh net-start",
                   f"{kv:.0f} vs {lv:.0f} ms", "<= 2x", kv <= 2 * lv)]


def sanity(s: dict) -> list[str]:
    return [f"{k}: median {v['median_ms']}" for k, v in s.items()
            if isinstance(v, dict) and not v.get("median_ms", 0) > 0]
