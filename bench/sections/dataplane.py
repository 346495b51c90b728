"""Section 6: the data plane floor, no guest: TCP throughput (iperf3, one stream) and minimum RTT
between two namespaces over a veth pair, and over veth -> bridge (in the section's namespace)
-> veth. Skipped in --quick and without iperf3."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from bench.lib.common import percentile, run
from bench.lib.report import Table

NAME = "dataplane"
TITLE = "6. Data plane floor (no guest)"
PING = "ping" if shutil.which("ping") else "busybox ping"
PATHS = {"veth": "10.201.0.2", "veth -> bridge -> veth": "10.202.0.2"}  # result key -> the far end
GBPS, RTT_MIN, RTT_AVG = "gbit_s_median", "rtt_min_us", "rtt_avg_us"


def params(quick: bool, profiles: str | None) -> dict:
    return {"skip": "--quick"} if quick else {"seconds": 3, "reps": 3}


def peers(p: dict) -> int:
    return 2  # client and server


def skip_reason(p: dict) -> str | None:
    if p.get("skip"):
        return p["skip"]
    return None if shutil.which("iperf3") else "iperf3 is not installed (apt-get install -y iperf3)"


def ns(name: str, cmd: str):
    return run(["ip", "netns", "exec", name, *cmd.split()])


def wire(a: str, b: str) -> None:
    ns(a, f"ip link add kvbdA type veth peer name kvbdB netns {b}")
    ns(a, "ip addr add 10.201.0.1/24 dev kvbdA")
    ns(b, "ip addr add 10.201.0.2/24 dev kvbdB")
    run(["ip", "link", "add", "kvbdpbr", "type", "bridge", "forward_delay", "0"])
    run(["ip", "link", "set", "kvbdpbr", "up"])
    for peer, inner, addr in ((a, "kvbbA", "10.202.0.1/24"), (b, "kvbbB", "10.202.0.2/24")):
        run(["ip", "link", "add", f"{inner}h", "type", "veth", "peer", "name", inner, "netns", peer])
        run(["ip", "link", "set", f"{inner}h", "master", "kvbdpbr", "up"])
        ns(peer, f"ip addr add {addr} dev {inner}")
        ns(peer, f"ip link set {inner} up")
    for peer in (a, b):
        ns(peer, "ip link set lo up")
    ns(a, "ip link set kvbdA up")
    ns(b, "ip link set kvbdB up")


def measure(p: dict) -> dict:
    a, b = p["peers"]
    secs = p["seconds"]
    wire(a, b)
    server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        time.sleep(0.5)
        for label, ip in PATHS.items():
            rtt = [float(x) for x in ns(a, f"{PING} -c 100 -i 0.005 -q {ip}").stdout.rsplit("=", 1)[1].split()[0].split("/")]
            gbps = []
            for _ in range(p["reps"]):
                res = json.loads(ns(a, f"iperf3 -c {ip} -p 5201 -t {secs} -J").stdout)
                gbps.append(res["end"]["sum_received"]["bits_per_second"] / 1e9)
            out[label] = {GBPS: round(percentile(gbps, 0.5), 2), "gbit_s_samples": [round(g, 2) for g in gbps],
                          RTT_MIN: round(rtt[0] * 1000, 1), RTT_AVG: round(rtt[1] * 1000, 1)}
    finally:
        server.terminate()
        server.wait(timeout=5)
    out["note"] = f"iperf3 -t {secs}, one TCP stream, {p['reps']} runs each; ping -c 100 -i 0.005"
    return out


def tables(s: dict) -> list[Table]:
    t = Table(TITLE, ["path", "Gbit/s (median)", "RTT min µs", "RTT avg µs"])
    for k in PATHS:
        t.add(k, s[k][GBPS], s[k][RTT_MIN], s[k][RTT_AVG])
    t.notes.append(s["note"])
    return [t]


def targets(s: dict) -> list[dict]:
    return []


def sanity(s: dict) -> list[str]:
    return [f"{k}: {s[k]}" for k in PATHS if not (s[k][GBPS] > 0 and s[k][RTT_MIN] > 0)]
