"""Twin labs for the libvirt differential suite: a side is a host namespace (where libvirt or
kvmnet runs) with a wan namespace (10.0.0.1, an HTTP server, routing 192.168.0.0/16 back to the
host) and client namespaces on veth ports of the host's bridges (busybox udhcpc, an HTTP server
each). Both sides use the same addresses and MACs, so their outcomes compare as plain values."""

from __future__ import annotations

import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from helpers.natlab import HELPERS, PY, serve
from helpers.netns import Netns

WAN_HOST, WAN_PEER = "10.0.0.2", "10.0.0.1"
# 20 tries a second apart: libvirt's dnsmasq answers only after its ~3 s ping check, and under
# load (a 2-core machine running the suite) 10 tries once ran out before it did.
UDHCPC = ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "20", "-T", "1", "-O", "mtu",
          "-s", str(HELPERS / "udhcpc.script")]


@dataclass
class Client:
    side: "Side"
    name: str
    mac: str
    bridge: str
    ns: Netns = None
    lease: dict = field(default_factory=dict)
    lease_ms: float = 0.0


class Side:
    """One half of a twin ("libvirt" or "kvmnet"): `host` is where the networks are made."""

    def __init__(self, label: str, host: Netns):
        self.label, self.host = label, host
        self.wan = Netns("kn-lw")
        self.clients: list[Client] = []
        host.sh(f"ip link add wan0 type veth peer name eth0 netns {self.wan.name} && "
                f"ip addr add {WAN_HOST}/24 dev wan0 && ip link set wan0 up && "
                f"ip route add default via {WAN_PEER}")
        self.wan.sh(f"ip addr add {WAN_PEER}/24 dev eth0 && ip link set eth0 up && "
                    f"ip route add 192.168.0.0/16 via {WAN_HOST}")
        serve(self.wan, "wan")
        host.settle()

    def plug(self, name: str, mac: str, bridge: str) -> Client:
        """A client namespace on a new veth port of `bridge` (no lease yet: see lease_all)."""
        client = Client(self, name, mac, bridge, Netns("kn-lc"))
        port = f"c-{name}"[:15]
        self.host.sh(f"ip link del {port} 2>/dev/null; ip link add {port} type veth peer name eth0 "
                     f"netns {client.ns.name} && ip link set {port} master {bridge} up")
        client.ns.sh(f"ip link set eth0 address {mac} up")
        serve(client.ns, name)
        self.clients.append(client)
        return client

    def unplug_all(self) -> None:
        for client in self.clients:
            # the port first: a veth deleted with its peer's namespace goes later, asynchronously
            self.host.run("ip", "link", "del", f"c-{client.name}"[:15], check=False)
            client.ns.delete()
        self.clients.clear()

    def close(self) -> None:
        self.unplug_all()
        self.wan.delete()


def lease_all(clients: list[Client]) -> None:
    """DHCP for every client at once (libvirt's dnsmasq pings an address for ~3 s before it
    offers it: in parallel, the twins wait for that once); each client's own time is kept."""
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(_lease, clients))


def _lease(client: Client, budget: float = 40) -> None:
    """udhcpc until a lease or `budget` seconds, as a client without -n keeps trying. One run
    gives up after 3 unanswered REQUESTs, and libvirt's dnsmasq answers nothing while it pings
    another client's candidate address (~3 s, synchronously): a static host offered just before
    that ping lost its lease about one run in six. (A longer -T would slow every discover.)"""
    t0 = time.perf_counter()
    found = None
    while found is None and (left := budget - (time.perf_counter() - t0)) > 1:
        try:
            res = client.ns.run(*UDHCPC, check=False, timeout=left)
        except subprocess.TimeoutExpired:
            break
        found = re.search(r"LEASE ip=(\S+) router=(\S*) dns=(\S*) domain=(\S*) mtu=(\S*)", res.stdout)
    client.lease_ms = (time.perf_counter() - t0) * 1000
    client.lease = (dict(zip(("ip", "router", "dns", "domain", "mtu"), found.groups())) if found
                    else {"error": "no lease"})


# ----------------------------------------------------------------------------- probes

def fetch(ns: Netns, address: str, timeout: float = 1.5) -> str:
    """An HTTP GET from `ns`: 'NAME saw SOURCE' when it connects, else why not, in one word."""
    body = ns.run(PY, str(HELPERS / "fetch.py"), f"http://{address}/", str(timeout), check=False).stdout.strip()
    if not body.startswith("ERROR"):
        return body
    for needle, word in (("refused", "refused"), ("timed out", "timeout"), ("No route", "no route"),
                         ("unreachable", "unreachable")):
        if needle in body:
            return word
    return body


def dns(ns: Netns, name: str, server: str) -> str:
    """The A records for `name` from `server`, 'not found', or 'no answer'."""
    res = ns.run("busybox", "nslookup", "-type=a", "-timeout=1", "-retry=1", name, server, check=False)
    text = res.stdout + res.stderr
    answer = text.split("Name:", 1)[1] if "Name:" in text else ""
    addrs = sorted(set(re.findall(r"Address:\s*([0-9.]+)\s*$", answer, re.M)))
    if addrs:
        return " ".join(addrs)
    return "no answer" if "timed out" in text else "not found"


def residue(before: dict, after: dict) -> str:
    """What a host namespace has after teardown that it did not have before, in short words:
    links, addresses, nft tables, iptables chains and rules, changed sysctls, new processes."""
    out = []
    new = lambda key: [x for x in after[key] if x not in before[key]]  # noqa: E731
    out += [f"link {l[0]}" for l in new("links")]
    out += [f"address {a[1]}/{a[2]} on {a[0]}" for a in new("addrs")]
    out += [f"nft {t}" for t in sorted(set(_nft_tables(after["nft"])) - set(_nft_tables(before["nft"])))]
    for family in ("iptables", "ip6tables"):
        rules = [l.split() for l in new_lines(before[family], after[family]) if l.startswith("-A")]
        jumps = sorted({r[r.index("-j") + 1] for r in rules if "-j" in r})
        if rules:
            out.append(f"{family}: {len(rules)} rules (jumps to {', '.join(jumps)})")
    out += [f"sysctl {s}" for s in new("sysctls")]
    out += [f"process {p.split()[1]}" for p in new("pids")]
    return "; ".join(out) or "nothing"


def new_lines(before: str, after: str) -> list[str]:
    old = set(before.splitlines())
    return [l for l in after.splitlines() if l not in old]


def _nft_tables(ruleset: str) -> list[str]:
    return [l[len("table "):].rstrip(" {") for l in ruleset.splitlines() if l.startswith("table ")]
