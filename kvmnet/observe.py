"""Read the host into an Observed value: links, addresses, routes, the sysctls the topology
cares about, kvmnet's own firewall objects and processes."""

from __future__ import annotations

from .host import netlink, sysctl
from .model import Topology
from .observed import Observed
from .plan import sysctl_paths


def observe(topo: Topology | None, extra_sysctls: tuple[str, ...] = (), firewall: dict | None = None,
            processes: dict | None = None) -> Observed:
    links = netlink.read_links()
    paths = (sysctl_paths(topo) if topo else []) + list(extra_sysctls)
    return Observed(links=links, addrs=netlink.read_addrs(links), routes=netlink.read_routes(links),
                    sysctls={p: sysctl.read(p) for p in paths}, firewall=firewall or {},
                    processes=processes or {})
