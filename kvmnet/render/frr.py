"""FRR's configuration for kvmnet's own EVPN instance on one host: zebra and bgpd, iBGP between
the hosts' underlay addresses (a full mesh: every host peers with every other), the l2vpn evpn
address family only, `advertise-all-vni` (every VXLAN device attached to a bridge is a VNI whose
MACs and flooding list BGP carries). Pure.

A full mesh is n(n-1)/2 sessions: fine for a handful of hosts. For more, one or two hosts would
be route reflectors (`neighbor X route-reflector-client` on them) and the others would peer with
those only; kvmnet does not do that yet.
"""

from __future__ import annotations

import os

ASN = 65000  # private; the sessions are internal to kvmnet's own instances

DAEMONS = ("zebra", "bgpd")


def paths(topo_dir: str) -> dict[str, str]:
    """Where the instance keeps everything: under the topology's state dir, never /etc/frr."""
    return files(os.path.join(topo_dir, "frr"))


def files(base: str) -> dict[str, str]:
    return {"dir": base, "zserv": os.path.join(base, "zserv.api"),
            **{f"{d}_conf": os.path.join(base, f"{d}.conf") for d in DAEMONS},
            **{f"{d}_pid": os.path.join(base, f"{d}.pid") for d in DAEMONS}}


def zebra_conf(host: str) -> str:
    return f"! kvmnet's zebra (generated; do not edit)\nhostname kvmnet-{host}\n"


def bgpd_conf(host: str, local: str, peers: list[str]) -> str:
    lines = ["! kvmnet's bgpd (generated; do not edit)", "frr defaults datacenter", f"hostname kvmnet-{host}",
             f"router bgp {ASN}", f" bgp router-id {local}", " no bgp default ipv4-unicast"]
    for peer in peers:
        lines += [f" neighbor {peer} remote-as {ASN}", f" neighbor {peer} update-source {local}"]
    lines += [" address-family l2vpn evpn"]
    lines += [f"  neighbor {peer} activate" for peer in peers]
    lines += ["  advertise-all-vni", " exit-address-family", ""]
    return "\n".join(lines)
