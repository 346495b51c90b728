"""Section 11: boot to lease. The kvmnet test guest (TCG, tests/labkit: busybox udhcpc) boots on
a kvmnet NAT network with a static lease, several times; tcpdump on the bridge timestamps its
DHCP exchange where dnsmasq receives and answers it. Reported: DISCOVER -> ACK and its parts,
QEMU start -> first DISCOVER, -> ACK (the first lease) and -> the guest's lease marker on its
console. The guest boots as it is, with `rcupdate.rcu_expedited=1` on its kernel command
line (busybox udhcpc makes, binds and closes a new packet socket for every packet it sends,
and the bind and the close each wait for an RCU grace period of the guest's kernel), and with
`kvmnet.dhcp4=dhclient`: its IPv4 lease by ISC dhclient, the client of a Debian guest, and with
`kvmnet.dhcp4=dhcpcd`: dhcpcd, which asks for rapid commit (DISCOVER, ACK). Beside them, native
clients (busybox udhcpc and, if installed, ISC dhclient and dhcpcd) in a namespace on a veth
port of the same bridge: the exchange without an emulated CPU. Skipped in --quick (a TCG boot takes seconds)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.lib.common import KVMNET, REPO, log, rotate, run
from bench.lib.dhcp_capture import Capture, intervals
from bench.lib.phaserun import kv_env
from bench.lib.report import Table, target

NAME = "boot_lease"
TITLE = "11. Boot to lease: a real guest's DHCP exchange on a kvmnet network (TCG guest, capture on the bridge)"
BRIDGE, GUEST, MAC, IP = "kvbl0", "leaser", "52:54:00:4b:4c:01", "10.210.0.10"
TOPOLOGY = f"""name = "lease"
[networks.lan]
mode = "nat"
bridge = "{BRIDGE}"
subnet = "10.210.0.0/24"
gateway = "10.210.0.1"
stp = false
[networks.lan.dhcp]
start = "10.210.0.100"
end = "10.210.0.199"
[guests.{GUEST}]
[[guests.{GUEST}.nics]]
network = "lan"
mac = "{MAC}"
ip = "{IP}"
"""
GUEST_AS_IS, GUEST_EXPEDITED = "TCG guest (busybox udhcpc)", "TCG guest, kernel rcupdate.rcu_expedited=1"
GUEST_DHCLIENT = "TCG guest (ISC dhclient, a Debian guest's client)"
GUEST_DHCPCD = "TCG guest (dhcpcd 9, asks for rapid commit)"
BOOTS = {GUEST_AS_IS: "", GUEST_EXPEDITED: "rcupdate.rcu_expedited=1",  # variant -> kernel command line
         GUEST_DHCLIENT: "kvmnet.dhcp4=dhclient", GUEST_DHCPCD: "kvmnet.dhcp4=dhcpcd"}
UDHCPC, DHCLIENT, DHCPCD = "native busybox udhcpc (veth)", "native ISC dhclient (veth)", "native dhcpcd (veth)"
# columns: (key, heading); DISCOVER is the one answered (earlier unanswered ones are counted apart)
COLUMNS = [("discover_to_ack", "DISCOVER -> ACK"), ("discover_to_offer", "DISCOVER -> OFFER (dnsmasq)"),
           ("offer_to_request", "OFFER -> REQUEST (client)"), ("request_to_ack", "REQUEST -> ACK (dnsmasq)"),
           ("start_to_discover", "QEMU start -> 1st DISCOVER"), ("start_to_ack", "QEMU start -> ACK (1st lease)"),
           ("start_to_marker", "QEMU start -> lease on console")]
TARGET_MS = 20.0


def params(quick: bool, profiles: str | None) -> dict:
    if quick:
        return {"skip": "--quick: a TCG guest boot takes seconds; full runs boot it 5 times each way"}
    return {"boots": 5, "native": 5, "profiles": profiles}


def peers(p: dict) -> int:
    return 1  # the native clients' namespace


def skip_reason(p: dict) -> str | None:
    if p.get("skip"):
        return p["skip"]
    if not shutil.which("tcpdump"):
        return "tcpdump is not installed (apt-get install -y tcpdump)"
    sys.path.insert(0, str(REPO / "tests"))
    from labkit.guest import skip_reason as guest_skip
    return guest_skip()


def boot_once(p: dict, label: str, i: int, net_args: list[str]) -> dict:
    from labkit.guest import Guest
    cap = Capture(BRIDGE, Path(p["tmp"]) / f"boot{i}-{len(BOOTS[label])}.pcap", MAC)
    guest = Guest(GUEST, net_args, append=BOOTS[label], boot_timeout=120)
    try:
        start = time.time()  # the capture's clock
        guest.start()
        guest.wait_for(r"KVMNET-(NO)?LEASE", 120)
        marker = time.time()  # the console is polled every 50 ms: up to that much late
        guest.stop(poweroff=False)
        lease = guest.leases().get("eth0", {})
        if lease.get("ip") != f"{IP}/24":
            raise RuntimeError(f"{label}, boot {i}: lease {lease}, expected {IP}/24")
        return intervals(cap.exchange(), start) | {"start_to_marker": round((marker - start) * 1000, 3)}
    finally:
        guest.stop(poweroff=False)
        cap.stop()


def native_once(p: dict, label: str, i: int) -> dict:
    """One native client in the peer namespace with the guest's MAC (its static lease)."""
    peer, tmp = p["peers"][0], Path(p["tmp"])
    cap = Capture(BRIDGE, tmp / f"native{i}-{len(label)}.pcap", MAC)
    try:
        if label == UDHCPC:
            run(["ip", "netns", "exec", peer, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
                 "-s", "/bin/true"], timeout=30)
            return intervals(cap.exchange())
        if label == DHCPCD:  # its lease and run files (compiled-in paths) on tmpfs, in its own mount namespace
            run(["ip", "netns", "exec", peer, "unshare", "-m", "sh", "-c",
                 "mount -t tmpfs none /var/lib/dhcpcd && mount -t tmpfs none /run && "
                 "exec dhcpcd -f /dev/null -o rapid_commit -4 -1 -B -A -L -G -c /bin/true eth0"], timeout=30)
            return intervals(cap.exchange())
        # -d: in the foreground, stopped once the ACK is captured; no lease file kept, so it
        # starts with a DISCOVER
        (tmp / "dhclient.leases").unlink(missing_ok=True)
        client = subprocess.Popen(["ip", "netns", "exec", peer, "dhclient", "-d", "-1", "-sf", "/bin/true", "-lf",
                                   str(tmp / "dhclient.leases"), "-pf", str(tmp / "dhclient.pid"), "eth0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return intervals(cap.exchange(timeout=30))
        finally:
            client.terminate()
            client.wait(timeout=10)
    finally:
        cap.stop()


def native_runs(p: dict) -> dict:
    peer = p["peers"][0]
    run(["ip", "link", "add", "kvblc", "type", "veth", "peer", "name", "eth0", "netns", peer])
    run(["ip", "link", "set", "kvblc", "master", BRIDGE, "up"])
    run(["ip", "netns", "exec", peer, "ip", "link", "set", "eth0", "address", MAC, "up"])
    clients = [UDHCPC] + ([DHCLIENT] if shutil.which("dhclient") else []) + \
        ([DHCPCD] if shutil.which("dhcpcd") and Path("/var/lib/dhcpcd").is_dir() else [])
    out = {c: [] for c in clients}
    for i in range(p["native"]):
        for c in rotate(clients, i):
            out[c].append(native_once(p, c, i))
    if p.get("profiles") and shutil.which("strace"):
        udhcpc_trace(peer, Path(p["profiles"]) / "boot-lease-udhcpc-strace.txt")
    return out


def udhcpc_trace(peer: str, dest: Path) -> None:
    """Where busybox udhcpc's OFFER -> REQUEST goes: its socket calls with their durations."""
    res = run(["ip", "netns", "exec", peer, "strace", "-tt", "-T", "-e", "trace=socket,bind,sendto,close,recvmsg,poll",
               "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"], timeout=30)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("busybox udhcpc (native, on a veth port of kvmnet's bridge) under strace -tt -T: before each packet "
                    "it sends it makes and binds a new AF_PACKET socket, and closes it after: bind and close each wait "
                    "for an RCU grace period (synchronize_net; their <duration>). The OFFER arrives while the "
                    "DISCOVER's socket is being closed; then the REQUEST's bind: OFFER -> REQUEST in section 11\n\n" + res.stderr)


def qemu_args(topo: Path, st: Path) -> list[str]:
    out = json.loads(run([KVMNET, "qemu-args", "--json", str(topo), GUEST], env=kv_env(st)).stdout)
    return [word for nic in out["nics"] for word in nic["args"]] + out.get("guest_args", [])


def measure(p: dict) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    tmp = Path(p["tmp"])
    topo, st = tmp / "lease.toml", tmp / "state"
    topo.write_text(TOPOLOGY)
    run([KVMNET, "apply", str(topo)], env=kv_env(st))
    runs = {label: [] for label in BOOTS}
    try:
        net_args = qemu_args(topo, st)
        for i in range(p["boots"]):
            for label in rotate(list(BOOTS), i):
                runs[label].append(r := boot_once(p, label, i, net_args))
                log(f"boot_lease: {label}, boot {i + 1}: DISCOVER -> ACK {r['discover_to_ack']:.1f} ms, "
                    f"QEMU start -> ACK {r['start_to_ack']:.0f} ms")
        runs.update(native_runs(p))
    finally:
        run([KVMNET, "destroy", str(topo)], env=kv_env(st), check=False)
    return {"runs": runs, "loadavg_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "guest": "tests/labkit guest: TCG, 1 vCPU, 128 MB, virtio-net on kvmnet's tap, busybox 1.35 udhcpc "
                     "(or ISC dhclient 4.4 with kvmnet.dhcp4=dhclient, dhcpcd 9.4 with kvmnet.dhcp4=dhcpcd)"}


# ----------------------------------------------------------------------------- reporting

def summary(runs: list[dict], key: str) -> dict | None:
    xs = [r[key] for r in runs if key in r]
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)} if xs else None


def cell(runs: list[dict], key: str) -> str:
    s = summary(runs, key)
    if s is None:
        return "-"
    if s["median"] >= 100:
        return f"{s['median']:,.0f} ({s['min']:,.0f} - {s['max']:,.0f})"
    return f"{s['median']:.1f} ({s['min']:.1f} - {s['max']:.1f})"


def tables(s: dict) -> list[Table]:
    t = Table(TITLE + "; ms, median (range)", ["client", "n", *[h for _, h in COLUMNS]])
    for label, runs in s["runs"].items():
        t.add(label, str(len(runs)), *[cell(runs, k) for k, _ in COLUMNS])
    retries = {k: sum(r["discovers_sent"] - 1 for r in v) for k, v in s["runs"].items()}
    t.notes += [f"{s['guest']}; the guest's static lease each time; tcpdump on the bridge (µs timestamps); "
                f"load average after {s['loadavg_after']}; DISCOVERs sent before the answered one, in all: {retries}",
                "dnsmasq's part is DISCOVER -> OFFER plus REQUEST -> ACK. OFFER -> REQUEST is the client's: busybox "
                "udhcpc makes, binds and closes a new packet socket for each packet it sends; bind and close each "
                "wait for an RCU grace period (synchronize_net) of the kernel it runs on (the OFFER comes while it "
                "closes the DISCOVER's socket; profiles/boot-lease-udhcpc-strace.txt): the guest's, emulated "
                "(hence the row with rcupdate.rcu_expedited=1), or this host's for the native udhcpc. ISC dhclient "
                "keeps one packet socket open and answers an OFFER at once: the guest booted with kvmnet.dhcp4=dhclient "
                "runs it (scripts/guest-init) for its IPv4 lease, as a Debian guest's ifupdown does",
                "kvmnet's dnsmasq has dhcp-rapid-commit (it is the network's only DHCP server): a client that "
                "asks for it, as dhcpcd and systemd-networkd do, gets its ACK in answer to its DISCOVER, with no "
                "OFFER and REQUEST (those rows have no parts); busybox udhcpc and ISC dhclient do not ask",
                "Under TCG the emulated guest dominates QEMU start -> lease (its kernel's boot, driver load, "
                "the client's start: dhcpcd, with its privilege-separated processes, starts slower than udhcpc); "
                "the console marker is polled every 50 ms and printed after the client's script ran"]
    return [t]


def targets(s: dict) -> list[dict]:
    out = []
    for label in BOOTS:
        ack = summary(s["runs"][label], "discover_to_ack")
        server = statistics.median(r["discover_to_offer"] + r["request_to_ack"] if "request_to_ack" in r
                                   else r["discover_to_ack"] for r in s["runs"][label])  # (rapid commit: all of it)
        out.append(target(f"boot to lease, {label}: DHCP DISCOVER -> ACK <= {TARGET_MS:.0f} ms median",
                          f"{ack['median']:.1f} ms (range {ack['min']:.1f} - {ack['max']:.1f}, {ack['n']} boots; "
                          f"dnsmasq's part {server:.1f} ms)", f"<= {TARGET_MS:.0f} ms", ack["median"] <= TARGET_MS))
    boot = summary(s["runs"][GUEST_AS_IS], "start_to_ack")
    out.append(target("boot to lease: QEMU start -> first lease (ACK on the bridge), reported",
                      f"{boot['median'] / 1000:.2f} s (range {boot['min'] / 1000:.2f} - {boot['max'] / 1000:.2f})",
                      "reported", None, "TCG: the guest's boot dominates"))
    return out


def sanity(s: dict) -> list[str]:
    bad = [f"{label}: no run" for label in BOOTS if not s["runs"].get(label)]
    for label, runs in s["runs"].items():
        bad += [f"{label}: {k} = {r[k]}" for r in runs for k, _ in COLUMNS[:4] if k in r and not r[k] > 0]
        bad += [f"{label}: a 4-message exchange" for r in runs if "dhcpcd" in label and not r["rapid_commit"]]
    return bad
