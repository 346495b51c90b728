"""Read the host into an Observed value: links, addresses, routes, the sysctls the topology
cares about, kvmnet's own firewall objects and dnsmasq processes."""

from __future__ import annotations

from .. import naming
from .plan.forwarding import dnsmasq_networks
from ..host import coexist, dnsmasq, firewall, netlink, procs, sysctl
from ..model import ROUTING_MODES, Topology
from ..observed import Observed
from .plan import sysctl_paths
from ..render.nft import needs_table


def observe(topo: Topology, state_dir: str, backend: str = "nftables") -> Observed:
    links = netlink.read_links()
    fw = {}
    if needs_table(topo):
        name = naming.iptables_prefix(topo.name) if backend == "iptables" else naming.nft_table(topo.name)
        fw = firewall.observe(name, backend, bridge_table=any(n.spoof_protection for n in topo.networks))
    exe = dnsmasq.binary()
    procs = {}
    for net in dnsmasq_networks(topo):
        paths = naming.dnsmasq_paths(state_dir, net.name)
        procs[f"dnsmasq:{net.name}"] = dnsmasq.observe(paths["conf"], paths["pid"], exe)
    forwarding = any(n.mode in ROUTING_MODES + ("bridge",) for n in topo.networks)
    return Observed(listeners=_forward_listeners(topo), host_forward=coexist.observe() if forwarding else {},links=links, addrs=netlink.read_addrs(links), routes=netlink.read_routes(links),
                    sysctls={p: sysctl.read(p) for p in sysctl_paths(topo)}, firewall=fw,
                    processes=procs, dnsmasq_user=dnsmasq.unprivileged_user(), dnsmasq_exe=exe)


def _forward_listeners(topo: Topology) -> dict[str, str]:
    """Sockets already bound on a port the topology forwards (DNAT would shadow them)."""
    wanted = {(f.proto, port) for net in topo.networks for f in net.forwards
              for port in range(f.host_ports[0], f.host_ports[1] + 1)}
    if not wanted:
        return {}
    bound = procs.listening()
    return {f"{proto}/{port}": ", ".join(procs.port_holders(port, proto))
            for proto, port in sorted(wanted) if (proto, port) in bound}
