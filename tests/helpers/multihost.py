"""Several "hosts" on one machine: an underlay (a bridge in its own namespace), N host namespaces
each with a veth on it (10.200.0.N/24), a "wan" namespace behind h1 (10.0.0.1, an HTTP server), and
clients: namespaces whose eth0 is a veth port on a host's bridge, standing in for guests. Each host
runs kvmnet with its own state dir, as separate machines would."""

from __future__ import annotations

from pathlib import Path

from .natlab import Client, dhcp_lease, serve as serve_http
from .netns import Netns


class MultiHost:
    WAN_HOST, WAN_PEER = "10.0.0.2", "10.0.0.1"

    def __init__(self, topology: Path, hosts: int = 3, underlay_mtu: int = 1500):
        self.topology, self.spaces, self.clients = topology, [], {}
        self.underlay = self._ns("kn-u")
        self.underlay.sh("ip link add ul0 type bridge && ip link set ul0 up")
        self.hosts: dict[str, Netns] = {}
        for i in range(1, hosts + 1):
            self.add_host(f"h{i}", underlay_mtu)
        self.wan = self._ns("kn-w")
        self.wan.sh("sysctl -qw net.ipv6.conf.default.accept_dad=0")
        h1 = self.hosts["h1"]
        h1.sh(f"ip link add wan0 type veth peer name eth0 netns {self.wan.name} && "
              f"ip addr add {self.WAN_HOST}/24 dev wan0 && ip link set wan0 up && "
              f"ip route add default via {self.WAN_PEER}")
        self.wan.sh(f"ip addr add {self.WAN_PEER}/24 dev eth0 && ip link set eth0 up")
        serve_http(self.wan, "wan", 80)
        h1.settle()

    def _ns(self, prefix: str) -> Netns:
        ns = Netns(prefix)
        self.spaces.append(ns)
        return ns

    def add_host(self, name: str, mtu: int = 1500) -> Netns:
        ns = self._ns(f"kn-{name}")
        ns.sh("sysctl -qw net.ipv6.conf.default.accept_dad=0")  # no DAD wait before the snapshot
        i = int(name[1:])
        port = f"ul-{ns.name[-8:]}"
        self.underlay.sh(f"ip link add {port} mtu {mtu} type veth peer name eth0 mtu {mtu} netns {ns.name} && "
                         f"ip link set {port} master ul0 up")
        ns.sh(f"ip addr add 10.200.0.{i}/24 dev eth0 && ip link set eth0 up")
        self.hosts[name] = ns
        ns.settle()
        return ns

    def kvmnet(self, host: str, *args: str, **kw):
        return self.hosts[host].kvmnet(*args, **kw)

    def add_client(self, host: str, name: str, mac: str, bridge: str, serve: bool = True) -> Client:
        """A namespace on a veth port of `host`'s bridge, leased by DHCP, its MTU the lease's."""
        ns = self._ns("kn-c")
        port = f"c-{name}"[:15]
        self.hosts[host].sh(f"ip link add {port} type veth peer name eth0 netns {ns.name} && "
                            f"ip link set {port} master {bridge} up")
        ns.sh(f"ip link set eth0 address {mac} up")
        lease = dhcp_lease(ns, name)
        if lease["mtu"]:  # what a guest's DHCP client does with option 26
            ns.sh(f"ip link set eth0 mtu {lease['mtu']}")
        if serve:
            serve_http(ns, name, 80)
        client = Client(ns, name, lease)
        self.clients[name] = client
        return client

    def close(self) -> None:
        for name, ns in self.hosts.items():
            ns.kvmnet("destroy", str(self.topology))
        for ns in reversed(self.spaces):
            ns.delete()
