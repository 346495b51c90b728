"""A multi-host topology -> this host's part of it. Every host applies the same file; this module
decides which host this is (`--host NAME`, else the [hosts] entry whose underlay address is
local) and rewrites the topology into what this host builds, so that everything after it (observe,
hostcheck, plan, record) works on a one-host topology as before:

- a stretched network (one with [vxlan]) that does not span this host is dropped;
- on its gateway_host it stays as written; on its other hosts it becomes a plain bridge (an
  isolated network without subnet: no address, dnsmasq, NAT or forwards: they live on the gateway
  host and are reached over the overlay), with a MAC of its own per host;
- its MTU is the file's, else the underlay link's MTU minus VXLAN's 50 bytes (IPv4 underlay),
  on every host alike, so the gateway's dnsmasq tells guests the MTU that fits everywhere;
- STP is off on stretched bridges: the overlay cannot loop (a bridge never sends a frame back
  out of the VXLAN port it came in on), and BPDUs across hosts would only delay new ports;
- guests of other hosts keep their NICs (the gateway's dnsmasq gives them their static leases)
  but no tap here.
"""

from __future__ import annotations

from .. import naming
from ..config import locate
from ..errors import InputError
from ..model import Network, Overlay, Topology
from ..valueclass import replace

VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
DEFAULT_UNDERLAY_MTU = 1500


def with_host(topo: Topology, name: str | None) -> Topology:
    """The topology with `--host NAME` noted (decided later, against the host: see localize)."""
    if name is None:
        return topo
    if topo.overlay is None:
        raise InputError(f"{topo.path}: --host {name}: the file has no [hosts] table (it describes one host)")
    names = [h.name for h in topo.overlay.hosts]
    if name not in names:
        raise InputError(f"{topo.path}: --host {name}: not one of the file's hosts ({', '.join(names)})")
    return replace(topo, overlay=replace(topo.overlay, me=name))


def decide(topo: Topology, links: dict, addrs: dict) -> Topology:
    """This host's part of `topo` (unchanged when it has no [hosts], or is already localized).
    `links`/`addrs`: the host's links and addresses as host.links()/host.addrs() return them."""
    ov = topo.overlay
    if ov is None or ov.local:
        return topo
    local = {str(a.cidr if hasattr(a, "cidr") else a).split("/")[0]: link
             for link, items in addrs.items() for a in items}
    if ov.me is None:
        found = [h.name for h in ov.hosts if str(h.underlay) in local]
        if len(found) != 1:
            listed = ", ".join(f"{h.name} {h.underlay}" for h in ov.hosts)
            raise InputError(f"{topo.path}: none of the [hosts] underlay addresses ({listed}) is an address of "
                             "this host: say --host NAME" if not found else
                             f"{topo.path}: several [hosts] underlay addresses are local ({', '.join(found)}): "
                             "say --host NAME")
        ov = replace(ov, me=found[0])
    underlay = str(ov.host(ov.me).underlay)
    if underlay not in local:
        raise InputError(locate(topo.path, [(("hosts", ov.me, "underlay"),
                                             f"{underlay} is not an address of this host (--host {ov.me})")]))
    link = links.get(local[underlay])
    mtu = link.mtu if link else DEFAULT_UNDERLAY_MTU
    _refuse_oversized(topo, ov, local[underlay], mtu)
    return localize(replace(topo, overlay=ov), mtu)


def _refuse_oversized(topo: Topology, ov: Overlay, dev: str, underlay_mtu: int) -> None:
    """A stretched network's `mtu` must fit in the underlay with VXLAN's header, else large
    frames would vanish between hosts (a black hole, not an error anyone sees)."""
    fits = underlay_mtu - VXLAN_OVERHEAD
    bad = [(("networks", n.name, "mtu"), f"{n.mtu} does not fit this host's underlay ({dev} mtu {underlay_mtu} "
                                         f"- {VXLAN_OVERHEAD} for VXLAN = {fits}): leave mtu out or lower it")
           for n in topo.networks if n.mtu and n.mtu > fits and (vx := ov.vxlan(n.name)) and ov.me in vx.hosts]
    if bad:
        raise InputError(locate(topo.path, bad))


def refuse_elsewhere(topo: Topology, guest: str, host=None) -> None:
    """`kvmnet run FILE GUEST` on a host the guest does not run on: its tap is not here."""
    if topo.overlay is None:
        return
    from ..host import system
    host = host or system.default()
    links = host.links()
    me = decide(topo, links, host.addrs(links)).overlay.me
    where = dict(topo.overlay.guest_hosts).get(guest)
    if where is not None and where != me:
        raise InputError(locate(topo.path, [(("guests", guest, "host"),
                                             f"guest {guest} runs on host {where}; this host is {me}")]))


def localize(topo: Topology, underlay_mtu: int) -> Topology:
    ov = topo.overlay
    me = ov.me
    networks = []
    for net in topo.networks:
        vx = ov.vxlan(net.name)
        if vx is None:
            networks.append(net)
        elif me in vx.hosts:
            mtu = net.mtu or underlay_mtu - VXLAN_OVERHEAD
            networks.append(replace(net, mtu=mtu, stp=False) if me == vx.gateway_host
                            else _bridge_only(topo, net, mtu, me))
    kept = {n.name for n in networks}
    where = dict(ov.guest_hosts)
    guests = []
    for guest in topo.guests:
        nics = tuple(nic if where.get(guest.name, me) == me else replace(nic, tap=None)
                     for nic in guest.nics if nic.network in kept)
        guests.append(replace(guest, nics=nics))
    return replace(topo, networks=tuple(networks), guests=tuple(guests), overlay=replace(ov, local=True))


def _bridge_only(topo: Topology, net: Network, mtu: int, me: str) -> Network:
    return Network(net.name, "isolated", bridge=net.bridge, stp=False, forward_delay=0, mtu=mtu,
                   mac=naming.bridge_mac(topo.name, f"{net.name}@{me}"))


def local_vxlans(topo: Topology) -> list:
    """(network, Vxlan, this host's underlay, the peers' underlays) for each stretched network
    this host builds (after localize)."""
    ov: Overlay | None = topo.overlay
    if ov is None or ov.me is None:
        return []
    out = []
    for net in topo.networks:
        vx = ov.vxlan(net.name)
        if vx is not None and ov.me in vx.hosts:
            peers = [str(ov.host(h).underlay) for h in vx.hosts if h != ov.me]
            out.append((net, vx, str(ov.host(ov.me).underlay), peers))
    return out


def vxlan_name(vni: int) -> str:
    """The VXLAN device of a VNI: one per VNI and host (the kernel refuses two on one port)."""
    return f"kvx{vni}"
