"""Section 10: a network stretched over three hosts (namespaces on an underlay bridge, the
section's own namespace): kvmnet's cold apply and no-op re-apply on each host (the gateway host
h1 runs the address, dnsmasq and NAT; h2 and h3 a bridge and the VXLAN port), destroy; and in full
runs TCP throughput (iperf3, one stream) and minimum RTT between two clients on different hosts
over the static VXLAN overlay, next to two clients on one host's bridge (both at the overlay's
MTU, 1450). Times include `ip netns exec` (~2 ms) into each host."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.lib.common import KVMNET, REPO, percentile, rotate, run, stats, timed
from bench.lib.report import Table, med

NAME = "multihost"
TITLE = "10. Several hosts: a network stretched over VXLAN"
TOPOLOGY = REPO / "topologies" / "multihost.toml"
HOSTS = ("h1", "h2", "h3")
COLD, REAPPLY, DESTROY = "cold apply", "no-op re-apply", "destroy"
PATHS = {"one host's bridge (h2 -> h2)": "10.95.0.52", "VXLAN overlay (h2 -> h3)": "10.95.0.51"}
GBPS, RTT_MIN = "gbit_s_median", "rtt_min_us"
PING = "ping" if shutil.which("ping") else "busybox ping"


def params(quick: bool, profiles: str | None) -> dict:
    return {"reps": 1, "iperf": False} if quick else {"reps": 5, "iperf": bool(shutil.which("iperf3")), "seconds": 3}


def peers(p: dict) -> int:
    return len(HOSTS) + 3  # the hosts, then clients c2 (h2), c3 (h3), c2b (h2)


def skip_reason(p: dict) -> str | None:
    return None


def _in(ns: str, *argv: str, **kw):
    return run(["ip", "netns", "exec", ns, *argv], **kw)


def wire(p: dict, state: Path) -> dict[str, str]:
    names = dict(zip(HOSTS + ("c2", "c3", "c2b"), p["peers"]))
    run(["ip", "link", "add", "ul0", "type", "bridge"])
    run(["ip", "link", "set", "ul0", "up"])
    for i, h in enumerate(HOSTS, 1):
        run(["ip", "link", "add", f"ul{i}", "type", "veth", "peer", "name", "eth0", "netns", names[h]])
        run(["ip", "link", "set", f"ul{i}", "master", "ul0", "up"])
        _in(names[h], "sh", "-c", f"ip link set lo up && ip addr add 10.200.0.{i}/24 dev eth0 && ip link set eth0 up")
        (state / h).mkdir()
    return names


def _kvmnet(names: dict, host: str, state: Path, verb: str, expect: str | None = None) -> float:
    return timed(["ip", "netns", "exec", names[host], KVMNET, "--state-dir", str(state / host), verb, str(TOPOLOGY)],
                 expect=expect)


def _clients(names: dict) -> None:
    for client, host, ip in (("c2", "h2", "10.95.0.50"), ("c3", "h3", "10.95.0.51"), ("c2b", "h2", "10.95.0.52")):
        port = f"b-{client}"
        _in(names[host], "sh", "-c", f"ip link add {port} type veth peer name eth0 netns {names[client]} && "
                                     f"ip link set {port} master kvb-lab up")
        _in(names[client], "sh", "-c", f"ip link set lo up && ip link set eth0 mtu 1450 up && "
                                       f"ip addr add {ip}/24 dev eth0")


def _throughput(p: dict, names: dict) -> dict:
    out = {}
    servers = [subprocess.Popen(["ip", "netns", "exec", names[c], "iperf3", "-s", "-p", "5201"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in ("c3", "c2b")]
    try:
        time.sleep(0.5)
        for label, ip in PATHS.items():
            rtt = _in(names["c2"], *PING.split(), "-c", "50", "-i", "0.01", "-q", ip).stdout
            gbps = []
            for _ in range(p["reps"] if p["iperf"] else 0):
                res = json.loads(_in(names["c2"], "iperf3", "-c", ip, "-p", "5201", "-t", str(p["seconds"]), "-J").stdout)
                gbps.append(res["end"]["sum_received"]["bits_per_second"] / 1e9)
            out[label] = {GBPS: round(percentile(gbps, 0.5), 2) if gbps else None,
                          RTT_MIN: round(float(rtt.rsplit("=", 1)[1].split("/")[0]) * 1000, 1)}
    finally:
        for s in servers:
            s.terminate()
            s.wait(timeout=5)
    return out


def measure(p: dict) -> dict:
    state = Path(tempfile.mkdtemp(prefix="kvb-mh-"))
    state.chmod(0o711)  # dnsmasq's group reads its host files in the state dirs below
    try:
        names = wire(p, state)
        times = {h: {COLD: [], REAPPLY: [], DESTROY: []} for h in HOSTS}
        for r in range(p["reps"]):
            for h in rotate(list(HOSTS), r):
                times[h][COLD].append(_kvmnet(names, h, state, "apply", "verified in sync"))
            for h in rotate(list(HOSTS), r):
                times[h][REAPPLY].append(_kvmnet(names, h, state, "apply", "already in sync"))
            if r < p["reps"] - 1:
                for h in HOSTS:
                    times[h][DESTROY].append(_kvmnet(names, h, state, "destroy", "destroyed"))
        _clients(names)
        out = {"hosts": {h: {k: stats(v) for k, v in times[h].items() if v} for h in HOSTS},
               "dataplane": _throughput(p, names)}
        for h in HOSTS:
            _kvmnet(names, h, state, "destroy", "destroyed")
        out["note"] = (f"{p['reps']} run(s) each; iperf3 -t {p.get('seconds')} one TCP stream" if p["iperf"]
                       else "throughput: full runs with iperf3 only")
        return out
    finally:
        shutil.rmtree(state, ignore_errors=True)


def tables(s: dict) -> list[Table]:
    t = Table(TITLE, ["host", "cold apply ms", "no-op re-apply ms", "destroy ms"])
    for h in HOSTS:
        row = s["hosts"][h]
        t.add(f"{h}{' (gateway)' if h == 'h1' else ''}", med(row.get(COLD)), med(row.get(REAPPLY)), med(row.get(DESTROY)))
    d = Table(f"{TITLE}: data plane", ["path", "Gbit/s (median)", "RTT min µs"])
    for label in PATHS:
        d.add(label, s["dataplane"][label][GBPS] if s["dataplane"][label][GBPS] is not None else "-",
              s["dataplane"][label][RTT_MIN])
    d.notes.append(s["note"])
    return [t, d]


def targets(s: dict) -> list[dict]:
    return []


def sanity(s: dict) -> list[str]:
    bad = [f"{h}: {s['hosts'][h]}" for h in HOSTS if not med(s["hosts"][h].get(COLD))]
    bad += [f"{k}: {v}" for k, v in s["dataplane"].items() if not v[RTT_MIN] > 0]
    return bad
