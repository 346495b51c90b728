"""Conflicts between a topology and the host, found before any change.

conflicts() is pure and returns (key path, reason) pairs; the caller turns them into
file:line messages. taps_of_other_topologies() reads the other records, to name the holder.
"""

from __future__ import annotations

from ipaddress import ip_network

from .. import naming
from ..errors import InputError
from ..model import VIRTUAL_MODES, Topology
from ..observed import Observed
from . import record as records
from .plan.firewall import key as firewall_key
from .plan.overlay import conflicts as overlay_conflicts
from .record import Record
from .statedir import topologies


def conflicts(topo: Topology, observed: Observed, record: Record,
              other_taps: dict[str, tuple[str, str]] | None = None) -> list[tuple[tuple, str]]:
    """`other_taps`: tap -> (topology, file) of the other topologies kvmnet applied here."""
    out = []
    ours = record.keys()
    owned_links = {k.split(":", 1)[1] for k in ours if k.startswith("link:")}
    bridges = {n.bridge for n in topo.networks if n.bridged}
    for net in topo.networks:
        if not net.bridged:
            continue
        link = observed.links.get(net.bridge)
        if link is not None and net.bridge not in owned_links:
            out.append((("networks", net.name, "bridge"),
                        f"{net.bridge} already exists on this host ({link.kind or 'device'}) and kvmnet did not create it"))
        if net.mode == "bridge":
            up = observed.links.get(net.uplink)
            if up is None:
                out.append((("networks", net.name, "uplink"), f"uplink {net.uplink} does not exist on this host"))
            elif up.master not in (None, net.bridge):
                out.append((("networks", net.name, "uplink"), f"uplink {net.uplink} is already a port of {up.master}"))
            elif up.kind in ("bridge", "tun"):
                out.append((("networks", net.name, "uplink"), f"uplink {net.uplink} is a {up.kind} device, not a NIC"))
        if net.subnet is not None:
            for route in observed.routes:
                if route.family != 4 or route.dst == "default" or route.dev in bridges or route.dev in owned_links:
                    continue
                if ip_network(route.dst).overlaps(net.subnet):
                    out.append((("networks", net.name, "subnet"),
                                f"{net.subnet} overlaps the host's route {route.dst} dev {route.dev}"))
        out += _prefix6_conflicts(net, observed, bridges | owned_links)
        out += _listener_conflicts(net, observed)
    out += firewall_conflicts(topo, observed, record)
    out += overlay_conflicts(topo, observed, ours)
    for guest in topo.guests:
        for i, nic in enumerate(guest.nics):
            why = _tap_conflict(nic.tap, observed, owned_links, other_taps or {})
            if why:
                out.append((("guests", guest.name, "nics", i, "tap"), why))
    return out


def _tap_conflict(tap: str | None, observed: Observed, owned_links: set[str], other_taps: dict) -> str | None:
    """A tap name is taken when another kvmnet topology has it (on the host or only in its
    record: QEMU creates hook-mode taps when a guest starts) or anything else holds it."""
    if not tap or tap in owned_links:
        return None
    if tap in other_taps:
        holder, file = other_taps[tap]
        return (f"{tap} is a tap of kvmnet topology {holder} (applied from {file or 'an unknown file'}); "
                "set another `tap =` for this NIC")
    if tap in observed.links:
        return f"{tap} already exists on this host and kvmnet did not create it"
    return None


def taps_of_other_topologies(state_root: str, topology: str) -> dict[str, tuple[str, str]]:
    """tap -> (topology, file) from every other record; an unreadable record is skipped here:
    it only names a holder, and the record's own topology reports it."""
    out: dict[str, tuple[str, str]] = {}
    for name in topologies(state_root):
        if name == topology:
            continue
        try:
            rec = records.load(state_root, name)
        except (InputError, OSError):
            continue
        links = [k.split(":", 1)[1] for k, _ in rec.entries if isinstance(k, str) and k.startswith("link:")]
        for tap in [*(rec.taps if isinstance(rec.taps, dict) else {}), *links]:
            out.setdefault(tap, (rec.topology, rec.file))
    return out


def firewall_conflicts(topo: Topology, observed: Observed, record: Record) -> list[tuple[tuple, str]]:
    """kvmnet's table (or chains) present on the host but not kvmnet's: no record of creating it,
    or rules none of which carries kvmnet's comment. Applying would replace them (nft replaces
    the whole table; the iptables backend rewrites its chains), so they are refused like a
    foreign bridge. Reported on the first network that needs the table."""
    seen = observed.firewall
    virtual = [n for n in topo.networks if n.mode in VIRTUAL_MODES]
    if not seen.get("exists") or not virtual:
        return []
    backend = seen.get("backend", "nftables")
    if backend == "iptables":
        # the verdict keys ip6 chains "ip6 <chain>" (render/iptables_verdict.py)
        names = [f"ip6tables chain {c[4:]}" if c.startswith("ip6 ") else f"iptables chain {c}"
                 for c in sorted(seen.get("rules") or {})]
        names = names or [f"jumps to iptables chains {naming.iptables_prefix(topo.name)}-*"]
    else:
        names = [f"table {family} {naming.nft_table(topo.name)}" for family in seen.get("families", ["inet"])]
    what = " and ".join(names)
    where = ("networks", virtual[0].name)
    if firewall_key(topo, backend) not in record.keys():
        hint = (" (it carries kvmnet's comments: if a lost state dir left it, `kvmnet destroy --force FILE` "
                "removes it)" if seen.get("marked") else "; remove it or rename the topology (`name = ...`)")
        exists = "exists" if len(names) == 1 and not names[0].startswith("jumps") else "exist"
        return [(where, f"{what} already {exists} on this host and kvmnet has no record of creating it{hint}")]
    if sum((seen.get("rules") or {}).values()) and not seen.get("marked"):
        return [(where, f"{what} holds rules kvmnet did not write (none carries kvmnet's comment); "
                        "remove it or rename the topology (`name = ...`)")]
    return []


def _prefix6_conflicts(net, observed: Observed, ours: set) -> list[tuple[tuple, str]]:
    """subnet6 against the host's IPv6 routes (not default, link-local or multicast ones)."""
    if net.subnet6 is None:
        return []
    for route in observed.routes:
        if route.family != 6 or route.dst == "default" or route.dev in ours:
            continue
        dst = ip_network(route.dst, strict=False)
        if dst.is_link_local or dst.is_multicast or dst.prefixlen == 0:
            continue
        if dst.overlaps(net.subnet6):
            return [(("networks", net.name, "subnet6"),
                     f"{net.subnet6} overlaps the host's route {route.dst} dev {route.dev}")]
    return []


def _listener_conflicts(net, observed: Observed) -> list[tuple[tuple, str]]:
    """A new forward would shadow a socket already bound on its port. observe() leaves out
    the ports kvmnet's table forwards already: those are kvmnet's, not a conflict."""
    out = []
    if not observed.listeners:  # the common case: nothing to look up for 10,000 forwards
        return out
    for fwd in net.forwards:
        for port in range(fwd.host_ports[0], fwd.host_ports[1] + 1):
            holder = observed.listeners.get(f"{fwd.proto}/{port}")
            if holder:
                out.append((("networks", net.name, "forwards", fwd.index, "host_port"),
                            f"{fwd.proto} port {port} is already in use on this host by {holder}"))
                break
    return out
