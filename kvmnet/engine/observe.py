"""Read the host into an Observed value: links, addresses, routes, the sysctls the topology
cares about, kvmnet's own firewall objects and dnsmasq processes."""

from __future__ import annotations

from .. import naming
from ..host import system
from ..model import ROUTING_MODES, Topology
from ..observed import Observed
from ..render.nft import needs_table
from .plan import dnsmasq as dnsmasq_plan, sysctls


def observe(topo: Topology, state_dir: str, backend: str = "nftables", host=None) -> Observed:
    host = host or system.default()
    links = host.links()
    fw = {}
    if needs_table(topo):
        name = naming.iptables_prefix(topo.name) if backend == "iptables" else naming.nft_table(topo.name)
        fw = host.firewall(name, backend, any(n.spoof_protection for n in topo.networks))
        if fw.get("exists"):  # whose rules they are is judged against the record of this backend's fact
            fw = dict(fw, backend=backend)
    exe = host.dnsmasq_binary()
    procs = {}
    for net in dnsmasq_plan.networks(topo):
        paths = naming.dnsmasq_paths(state_dir, net.name)
        procs[f"dnsmasq:{net.name}"] = host.dnsmasq(paths["conf"], paths["pid"], exe)
    forwarding = any(n.mode in ROUTING_MODES + ("bridge",) for n in topo.networks)
    return Observed(links=links, addrs=host.addrs(links), routes=host.routes(links),
                    sysctls={p: host.sysctl(p) for p in sysctls.paths(topo)}, firewall=fw,
                    processes=procs, host_forward=host.host_forward() if forwarding else {},
                    listeners=_forward_listeners(topo, host),
                    dnsmasq_user=host.dnsmasq_user(), dnsmasq_exe=exe)


def _forward_listeners(topo: Topology, host) -> dict[str, str]:
    """Sockets already bound on a port the topology forwards (DNAT would shadow them)."""
    wanted = {(f.proto, port) for net in topo.networks for f in net.forwards
              for port in range(f.host_ports[0], f.host_ports[1] + 1)}
    if not wanted:
        return {}
    bound = host.listening()
    return {f"{proto}/{port}": ", ".join(host.port_holders(port, proto))
            for proto, port in sorted(wanted) if (proto, port) in bound}
