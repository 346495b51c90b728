"""Section 7 of the benchmarks: the data plane with a real guest. A tiny TCG guest on kvmnet's
NAT network (tap + bridge + nft), the same guest on QEMU user-mode networking (slirp), on a
passt network and on a direct (macvtap) network (bench/lib/guest_attach.py): TCP throughput
guest->host, host->guest and guest->wan (busybox nc, timed at the receiving end), ping latency
guest->host. Namespaces: "host" (kvmnet, QEMU) and "wan" (10.0.0.1). Under TCG the
emulated guest CPU is the bottleneck; the veth/bridge floor (section 6) stands beside it."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from helpers.lab import Lab  # noqa: E402
from labkit.guest import nic_args, skip_reason  # noqa: E402
from bench.lib import guest_attach as attach  # noqa: E402

MB = 64  # host->guest, per transfer: long enough to dwarf connection set-up under TCG
MB_UP = 16  # guest->*: the emulated busybox dd|nc pipeline sends only a few MB/s
SINK = r"""
import socket, sys, time, json
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(8)
while True:
    conn, _ = srv.accept(); total = 0; first = None
    while True:
        data = conn.recv(1 << 20)
        if not data: break
        first = first or time.monotonic(); total += len(data)
    print(json.dumps({"bytes": total, "seconds": time.monotonic() - (first or time.monotonic())}), flush=True)
    conn.close()
"""


def _sink(ns, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-u", "-c", SINK, str(port)],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 5
    while f":{port:04X}" not in ns.run("cat", "/proc/net/tcp").stdout:
        if time.monotonic() > deadline:
            raise TimeoutError("sink did not start")
        time.sleep(0.02)
    return proc


def _gbits(result: dict) -> float:
    return result["bytes"] * 8 / max(result["seconds"], 1e-6) / 1e9


def guest_to(guest, sink: subprocess.Popen, addr: str, port: int, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        guest.check(f"dd if=/dev/zero bs=1048576 count={MB_UP} 2>/dev/null | nc {addr} {port}", timeout=120)
        out.append(_gbits(json.loads(sink.stdout.readline())))
    return out


def host_to_guest(lab, guest, connect: tuple[str, int], listen_port: int, reps: int) -> list[float]:
    out = []
    send = ("import socket,sys,time; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 10); "
            "b=bytes(1<<20); t=time.monotonic()\nfor _ in range(int(sys.argv[3])): s.sendall(b)\n"
            "s.shutdown(socket.SHUT_WR); s.recv(1); print(time.monotonic()-t)")
    for _ in range(reps):
        # the guest's nc exits at EOF and the shell then closes: the sender's recv returns. Its
        # stdin stays open (sleep): at EOF on /dev/null nc would half-close at once, the sender's
        # recv would return before the guest has the data, and passt stops relaying to the guest
        guest.run(f"(sleep 300 | nc -l -p {listen_port} > /dev/null) >/dev/null 2>&1 &", timeout=10)
        time.sleep(0.3)
        res = lab.host.run(sys.executable, "-c", send, connect[0], str(connect[1]), str(MB), check=True, timeout=120)
        out.append(MB * (1 << 20) * 8 / float(res.stdout) / 1e9)
    return out


def ping_ms(guest, addr: str) -> dict:
    out = guest.check(f"ping -c 20 -i 0.2 {addr}", timeout=30)
    found = re.search(r"min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+)", out)
    return {"min": float(found.group(1)), "avg": float(found.group(2)), "max": float(found.group(3))}


def _row(lab, row, host_sink, wan_sink, reps: int) -> dict:
    return {"guest->host Gbit/s": statistics.median(guest_to(row.guest, host_sink, row.host_addr, 5001, reps)),
            "host->guest Gbit/s": statistics.median(host_to_guest(lab, row.guest, row.host_to_guest, 5002, reps)),
            "guest->wan Gbit/s": statistics.median(guest_to(row.guest, row.wan_sink or wan_sink, row.wan_addr, 5001, reps)),
            "ping guest->host ms": ping_ms(row.guest, row.ping_addr or row.host_addr)}


def measure(reps: int = 3) -> dict:
    lab = Lab(REPO / "topologies" / "nat.toml")
    tmp = Path(tempfile.mkdtemp(prefix="kvmnet-bench-attach-"))
    try:
        lab.apply()
        host_sink, wan_sink = _sink(lab.host, 5001), _sink(lab.wan, 5001)
        user_net = nic_args("user,hostfwd=tcp:127.0.0.1:5003-:5002", 0)
        nat, user = lab.boot("web", "slirp", net_args={"slirp": user_net})
        rows = {"kvmnet NAT (tap, bridge, nft)": attach.Row(nat, "192.168.122.1", ("192.168.122.10", 5002), "10.0.0.1"),
                "QEMU user-mode (slirp)": attach.Row(user, "10.0.2.2", ("127.0.0.1", 5003), "10.0.0.1"),
                "passt (kvmnet passt)": attach.passt_guest(lab, tmp),
                "macvtap (direct, bridge mode)": attach.macvtap_guest(lab, tmp, _sink)}
        load = [round(x, 2) for x in os.getloadavg()]
        results = {name: _row(lab, row, host_sink, wan_sink, reps) for name, row in rows.items()}
        return {"transfer_mb": MB, "transfer_up_mb": MB_UP, "reps": reps, "guest": "TCG, 1 vCPU, virtio-net",
                "load_average": {"before": load, "after": [round(x, 2) for x in os.getloadavg()]}, "results": results}
    finally:
        for guest in lab.guests.values():
            guest.stop(poweroff=False)
        attach.destroy(lab, tmp)
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


NOTES = [
    "kvmnet NAT: the host is the bridge's 192.168.122.1, the wan 10.0.0.1 through MASQUERADE; host->guest "
    "connects to the guest's own address.",
    "slirp: the host is slirp's 10.0.2.2 (the host itself), host->guest through `hostfwd` on 127.0.0.1.",
    "passt (Debian 12's 0.0~git20230309, mtu 1500 as the other guests have): guest->host to its gateway "
    "10.0.2.2 (mapped to the host), host->guest through its forward on 127.0.0.1, the wan through its own "
    "sockets; the ping goes to the host's own address 10.0.0.2 (this passt answers no ICMP to the gateway "
    "address, and relays ICMP only where `net.ipv4.ping_group_range` admits user nobody).",
    "macvtap (direct, bridge mode, on a veth uplink): the host is its macvlan kvmhost0 10.61.0.250 on the "
    "same uplink, the \"wan\" the LAN host 10.61.0.1 behind the uplink (no NAT, no router).",
]


def markdown(data: dict) -> str:
    lines = ["**7. Data plane with a real guest (TCG)**", "",
             "| network | guest->host Gbit/s | host->guest Gbit/s | guest->wan Gbit/s | ping guest->host min/avg ms |",
             "|---|---:|---:|---:|---:|"]
    for name, r in data["results"].items():
        p = r["ping guest->host ms"]
        lines.append(f"| {name} | {r['guest->host Gbit/s']:.3f} | {r['host->guest Gbit/s']:.3f} | "
                     f"{r['guest->wan Gbit/s']:.3f} | {p['min']:.2f} / {p['avg']:.2f} |")
    load = data.get("load_average")
    lines += ["", f"- {data['transfer_up_mb']} MB from the guest (busybox `dd | nc`, timed at the receiver), "
              f"{data['transfer_mb']} MB to the guest (timed at the sender until the guest's nc has it all and "
              f"closes), median of {data['reps']}. Under TCG the "
              "emulated guest CPU is the bottleneck (guest->* measures busybox's copy loop in emulation as much as "
              "the network): compare the rows with each other, and with the veth/bridge floor of section 6."]
    lines += [f"- {note}" for note in NOTES]
    if load:
        lines.append(f"- Load average (1/5/15 min) when measuring started: {' / '.join(map(str, load['before']))}; "
                     f"when it ended: {' / '.join(map(str, load['after']))} (2 cores).")
    return "\n".join(lines + [""])


def main() -> int:
    why = skip_reason()
    if why:
        print(f"guest data plane skipped: {why}")
        return 0
    data = measure()
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "guest-dataplane.json").write_text(json.dumps(data, indent=1))
    (out / "guest-dataplane.md").write_text(markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
