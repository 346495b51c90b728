"""After "ready": how long a new client waits for its first DHCP lease from dnsmasq."""

from __future__ import annotations

from pathlib import Path

from bench.lib.common import rotate, run, stats, timed
from bench.lib.hostutil import kill_pidfile


def first_offer(client_ns: str, tmp: Path, runs: int) -> dict:
    """Time from a DHCP client's start to its lease (DISCOVER, OFFER, REQUEST, ACK) from dnsmasq
    started with the seed's flags, without and with --no-ping (kvmnet's conf has no-ping). The
    client is busybox udhcpc in another namespace (`client_ns`) on a veth port of a bridge with
    STP off, so the port's STP listening/learning delay is not part of it (see stp_* for that)."""
    rundir = tmp / "dhcp"
    rundir.mkdir()
    run(["ip", "link", "add", "kvbdh0", "type", "bridge"])
    run(["ip", "addr", "add", "10.203.0.1/24", "dev", "kvbdh0"])
    run(["ip", "link", "set", "kvbdh0", "up"])
    run(["ip", "link", "add", "kvbdhA", "type", "veth", "peer", "name", "kvbdhB", "netns", client_ns])
    run(["ip", "link", "set", "kvbdhA", "master", "kvbdh0", "up"])
    in_client = ["ip", "netns", "exec", client_ns]
    run([*in_client, "ip", "link", "set", "kvbdhB", "up"])
    seed_flags = ["dnsmasq", "--strict-order", "--except-interface=lo", "--interface=kvbdh0",
                  "--listen-address=10.203.0.1", "--bind-interfaces", "--dhcp-range=10.203.0.2,10.203.0.254",
                  "--conf-file=", f"--pid-file={rundir}/d.pid", f"--dhcp-leasefile={rundir}/d.leases",
                  "--dhcp-no-override"]
    samples = {"seed's dnsmasq flags": [], "the same + --no-ping (as kvmnet's conf)": []}
    exec_overhead = []
    try:
        for i in range(runs):
            for j, label in enumerate(rotate(list(samples), i)):
                extra = ["--no-ping"] if "no-ping" in label else []
                mac = f"02:00:00:00:{i:02x}:{j:02x}"  # a client dnsmasq has never seen
                run([*in_client, "ip", "link", "set", "kvbdhB", "address", mac])
                run(seed_flags + extra)
                samples[label].append(timed([*in_client, "busybox", "udhcpc", "-i", "kvbdhB", "-f", "-q", "-n",
                                             "-t", "5", "-s", "/bin/true"], timeout=60, expect="obtained"))
                kill_pidfile(rundir / "d.pid", str(rundir))
                (rundir / "d.leases").unlink(missing_ok=True)
            exec_overhead.append(timed([*in_client, "true"]))
    finally:
        kill_pidfile(rundir / "d.pid", str(rundir))
        run(["ip", "link", "del", "kvbdh0"], check=False)
        run(["ip", "link", "del", "kvbdhA"], check=False)
    out = {k: stats(v) for k, v in samples.items()}
    out["ip netns exec overhead (included above)"] = stats(exec_overhead)
    out["note"] = ("busybox udhcpc start -> lease, run through `ip netns exec` in the client namespace; "
                   "bridge STP off")
    return out
