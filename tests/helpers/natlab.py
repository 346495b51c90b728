"""A NAT lab from namespaces: "host" runs kvmnet, "wan" is the outside world (10.0.0.1, an
HTTP server), and each client is a namespace whose eth0 is a veth port on kvmnet's bridge,
standing in for a guest (the labs with real guests boot QEMU instead)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

from .netns import Netns

HELPERS = Path(__file__).resolve().parent
PY = sys.executable


def serve(ns: Netns, name: str, port: int = 80) -> None:
    """httpd.py in `ns` on `port`, answering 'NAME saw CLIENT'; returns once it listens."""
    subprocess.Popen(["ip", "netns", "exec", ns.name, PY, str(HELPERS / "httpd.py"), str(port), name],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while f":{port:04X}" not in ns.run("cat", "/proc/net/tcp").stdout:
        if time.monotonic() > deadline:
            raise TimeoutError(f"http server {name} did not start")
        time.sleep(0.02)


def dhcp_lease(ns: Netns, name: str) -> dict:
    """busybox udhcpc on eth0 of `ns` (asking for the MTU too): {ip, router, dns, domain, mtu}."""
    res = ns.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "8", "-T", "1", "-O", "mtu",
                 "-s", str(HELPERS / "udhcpc.script"), check=False, timeout=30)
    found = re.search(r"LEASE ip=(\S+) router=(\S*) dns=(\S*) domain=(\S*) mtu=(\S*)", res.stdout)
    assert found, f"no DHCP lease for {name}: {res.stdout} {res.stderr}"
    return dict(zip(("ip", "router", "dns", "domain", "mtu"), found.groups()))


class Client:
    def __init__(self, ns: Netns, name: str, lease: dict):
        self.ns, self.name, self.lease = ns, name, lease

    def fetch(self, url: str, timeout: float = 3) -> str:
        return self.ns.run(PY, str(HELPERS / "fetch.py"), url, str(timeout), check=False).stdout


class NatLab:
    WAN_HOST, WAN_PEER = "10.0.0.2", "10.0.0.1"

    def __init__(self, topology: Path, backend: str = "nftables"):
        self.topology, self.backend = topology, backend
        self.host = Netns("kn-h")
        self.spaces = [self.host]
        self.wan = self._ns("kn-w")
        self.clients: dict[str, Client] = {}
        self.host.sh(f"ip link add wan0 type veth peer name eth0 netns {self.wan.name} && "
                     f"ip addr add {self.WAN_HOST}/24 dev wan0 && ip link set wan0 up && "
                     f"ip route add default via {self.WAN_PEER}")
        self.wan.sh(f"ip addr add {self.WAN_PEER}/24 dev eth0 && ip link set eth0 up")
        self.serve(self.wan, "wan", 80)
        self.host.settle()

    def _ns(self, prefix: str) -> Netns:
        ns = Netns(prefix)
        self.spaces.append(ns)
        return ns

    def serve(self, ns: Netns, name: str, port: int) -> None:
        serve(ns, name, port)

    def kvmnet(self, *args: str, **kw):
        return self.host.kvmnet(*args, **kw)

    def apply(self, *extra: str):
        res = self.kvmnet("apply", "--firewall", self.backend, *extra, str(self.topology))
        assert res.returncode == 0, res.stdout + res.stderr
        return res

    def add_client(self, name: str, mac: str, bridge: str = "virbr0", serve: bool = True) -> Client:
        """A namespace on a veth port c-NAME of the bridge. If the topology names its guest's tap
        c-NAME, the veth takes the tap's place (the stand-in guest then gets the tap's rules)."""
        ns = self._ns("kn-c")
        port = f"c-{name}"[:15]
        self.host.sh(f"ip link del {port} 2>/dev/null; ip link add {port} type veth peer name eth0 netns {ns.name} && "
                     f"ip link set {port} master {bridge} up")
        ns.sh(f"ip link set eth0 address {mac} up")
        lease = dhcp_lease(ns, name)
        if serve:
            for p in (80, 81, 82):
                self.serve(ns, name, p)
        client = Client(ns, name, lease)
        self.clients[name] = client
        return client

    def remove_clients(self) -> None:
        for client in self.clients.values():
            client.ns.delete()
            self.spaces.remove(client.ns)
        self.clients.clear()

    def close(self) -> None:
        self.kvmnet("destroy", str(self.topology))
        for ns in reversed(self.spaces):
            ns.delete()


@contextlib.contextmanager
def running_lab(topology: Path, backend: str = "nftables", prepare=None):
    """A NatLab applied, with the guests "web" (MAC 52:54:00:12:34:56) and "other" (a MAC no
    topology pins) as clients; `prepare(lab)` runs first (foreign rules, canaries). lab.before is
    the host namespace's snapshot just before apply. Always closed."""
    lab = NatLab(topology, backend)
    try:
        if prepare:
            prepare(lab)
        lab.before = lab.host.snapshot()
        lab.apply()
        lab.web = lab.add_client("web", "52:54:00:12:34:56")
        lab.other = lab.add_client("other", "52:54:00:00:00:77")
        yield lab
    finally:
        lab.close()
