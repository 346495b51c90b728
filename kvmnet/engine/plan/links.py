"""Facts about links: bridges, taps, an uplink moved into its bridge, addresses and routes. Pure."""

from __future__ import annotations

from ... import naming
from ...model import Network, Topology
from ...observed import Observed, address
from ..record import Record
from ..steps import Step
from .facts import Facts

_LINK_ATTRS = ("master", "mac", "mtu", "up", "stp", "forward_delay")


def effective_forward_delay(stp: bool, delay: int) -> int:
    """With STP on, the kernel clamps the forward delay to 2-30 s (as libvirt's delay=0 gets)."""
    return min(max(delay, 2), 30) if stp else delay


_KERNELS_ROUTES = ("kernel", "ra")  # made by the kernel from addresses / router adverts: not moved


def uplink_snapshot(net: Network, observed: Observed, record: Record) -> dict:
    """The uplink's MAC, addresses (IPv4 and global IPv6, in the kernel's order, with their
    attributes) and routes (every table, IPv4 and IPv6) as they were before kvmnet first moved
    them. Records of older kvmnets hold IPv4 CIDR strings and main-table routes: still read."""
    if net.name in record.uplinks:
        snap = record.uplinks[net.name]
        return dict(snap, addrs=[address(a).as_dict() for a in snap["addrs"]])
    link = observed.links.get(net.uplink)
    addrs = [a.as_dict() for a in observed.addresses_of(net.uplink)]
    routes = [r.as_dict() for r in observed.routes if r.dev == net.uplink and r.proto not in _KERNELS_ROUTES]
    return {"mac": link.mac if link else None, "addrs": addrs, "routes": routes}


def _replay_order(addrs: list[dict]) -> list[dict]:
    """The order to add addresses in so the kernel lists them as before: IPv4 as listed (the
    first of a subnet is its primary), IPv6 reversed (the kernel lists the newest first)."""
    return [a for a in addrs if ":" not in a["cidr"]] + [a for a in reversed(addrs) if ":" in a["cidr"]]


def _relabel(a: dict, uplink: str, bridge: str) -> dict:
    """The address as the bridge carries it: label eth0:1 becomes br0:1 (15 bytes at most)."""
    label = a.get("label")
    if not label:
        return a
    moved = bridge + label[len(uplink):] if label.startswith(uplink) else label
    return dict(a, label=moved) if len(moved.encode()) <= 15 else {k: v for k, v in a.items() if k != "label"}


def _relink(step: Step, observed: Observed) -> Step | None:
    """Undo of link.set: the attributes it changes, as the link has them now."""
    link = observed.links.get(step.args["name"])
    if link is None:
        return None
    old = {"name": link.name}
    for attr in _LINK_ATTRS:
        if attr in step.args:
            value = getattr(link, attr)
            old[attr] = (value or "") if attr == "master" else value
    return Step("link.set", old)


def _recreate(step: Step, observed: Observed) -> Step | None:
    """Undo of link.del: the bridge or tap made again as it is now (other kinds are not ours)."""
    link = observed.links.get(step.args["name"])
    if link is None:
        return None
    if link.kind == "bridge":
        return Step("bridge.add", {"name": link.name, "mac": link.mac, "mtu": link.mtu,
                                   "stp": link.stp, "forward_delay": link.forward_delay})
    if link.kind == "tun":
        mq = {"multi_queue": True} if link.multi_queue else {}
        return Step("tap.add", {"name": link.name, "master": link.master or "", "mac": link.mac, "mtu": link.mtu,
                                "group": link.group, **mq})
    return None


def _opposite(op: str):
    return lambda step, observed: Step(op, dict(step.args))


# op -> the step that puts back what it changes, judged from the host as observed now
UNDO = {"bridge.add": lambda step, _: Step("link.del", {"name": step.args["name"]}),
        "tap.add": lambda step, _: Step("link.del", {"name": step.args["name"]}),
        "link.del": _recreate, "link.set": _relink,
        "addr.add": _opposite("addr.del"), "addr.del": _opposite("addr.add"),
        "route.add": _opposite("route.del"), "route.del": _opposite("route.add")}


def _want(facts: Facts, key: str, do: Step | None, kind: str = "create") -> None:
    facts.want(key, do, UNDO[do.op](do, facts.obs) if do else None, kind)


def bridge(facts: Facts, net: Network, mac: str | None, group: int) -> None:
    """The network's bridge, in the topology's bridge link group (not compared later: bridges
    made before there was one are deleted one by one)."""
    delay = effective_forward_delay(net.stp, net.forward_delay)
    link = facts.obs.links.get(net.bridge)
    key = f"link:{net.bridge}"
    if link is None:
        _want(facts, key, Step("bridge.add", {"name": net.bridge, "mac": mac, "mtu": net.mtu,
                                              "stp": net.stp, "forward_delay": delay, "group": group}))
        return
    drift = {}
    if net.mtu and link.mtu != net.mtu:
        drift["mtu"] = net.mtu
    if mac and link.mac != mac:
        drift["mac"] = mac
    if link.stp != net.stp:
        drift["stp"] = net.stp
    if link.forward_delay != delay:
        drift["forward_delay"] = delay
    if not link.up:
        drift["up"] = True
    _want(facts, key, Step("link.set", {"name": net.bridge, **drift}) if drift else None, "modify")


def addr(facts: Facts, link: str, a: str | dict, present: bool = True) -> None:
    """An address on `link` (a CIDR, or an Address.as_dict() with its attributes), or absent."""
    attrs = {"cidr": a} if isinstance(a, str) else a
    cidr = attrs["cidr"]
    has = cidr in facts.obs.addrs_of(link)
    if present:
        _want(facts, f"addr:{link}:{cidr}", None if has else Step("addr.add", {"link": link, **attrs}))
    else:  # the removal carries the attributes, so its undo puts the address back as it was
        _want(facts, f"noaddr:{link}:{cidr}", Step("addr.del", {"link": link, **attrs}) if has else None)


IFA_F_NODAD = 0x02


def gateway6(facts: Facts, net: Network) -> None:
    """The bridge's IPv6 gateway address, without duplicate address detection (as libvirt adds
    it): the bridge has no carrier until a guest's tap joins, and a tentative address could not
    be bound by dnsmasq nor used as the source of its router advertisements."""
    addr(facts, net.bridge, {"cidr": str(net.gateway6_interface), "flags": IFA_F_NODAD})


def _same_route(r, route: dict) -> bool:
    return (r.family, r.dst, r.dev, r.gateway, r.table) == (
        route["family"], route["dst"], route["dev"], route.get("gateway"), route.get("table", 254))


def route(facts: Facts, route: dict, present: bool = True) -> None:
    has = any(_same_route(r, route) for r in facts.obs.routes)
    table = f":table{route['table']}" if route.get("table", 254) != 254 else ""
    key = f"{'route' if present else 'noroute'}:{route['dev']}:{route['dst']}:{route.get('gateway')}{table}"
    if present:
        _want(facts, key, None if has else Step("route.add", {"route": route}))
    else:
        _want(facts, key, Step("route.del", {"route": route}) if has else None)


def uplink(facts: Facts, net: Network, record: Record, group: int) -> None:
    """Bridge mode: the bridge takes the uplink's MAC, then its addresses and routes, exactly.
    Removals from the uplink run in the reverse order of the adds, so destroy (which undoes
    newest first) puts addresses and routes back in their original order: the primary first."""
    snap = uplink_snapshot(net, facts.obs, record)
    link = facts.obs.links.get(net.uplink)
    bridge(facts, net, snap["mac"], group)
    attach = None if link and link.master == net.bridge else Step("link.set", {"name": net.uplink, "master": net.bridge})
    _want(facts, f"master:{net.uplink}", attach)
    if net.mtu and link and link.mtu != net.mtu:  # a port of the network: the network's MTU
        _want(facts, f"mtu:{net.uplink}", Step("link.set", {"name": net.uplink, "mtu": net.mtu}))
    else:
        facts.wanted.add(f"mtu:{net.uplink}")
    addrs = _replay_order(snap["addrs"])
    for a in addrs:
        addr(facts, net.bridge, _relabel(a, net.uplink, net.bridge))
    for r in reversed(snap["routes"]):  # before the addresses: the last IPv4 one takes them all
        route(facts, r, present=False)
    for a in reversed(addrs):  # secondaries before their primary (which would take them along)
        addr(facts, net.uplink, a, present=False)
    for r in snap["routes"]:
        route(facts, dict(r, dev=net.bridge))


def tap(facts: Facts, topo: Topology, net: Network, name: str, guest_mac: str, multi_queue: bool = False) -> None:
    link = facts.obs.links.get(name)
    key = f"link:{name}"
    if link is None:
        mq = {"multi_queue": True} if multi_queue else {}  # a guest opening it with queues > 1 needs it
        _want(facts, key, Step("tap.add", {"name": name, "master": net.bridge, "mac": naming.tap_host_mac(guest_mac),
                                           "mtu": net.mtu, "group": naming.link_group(topo.name), **mq}))
        return
    drift = {}
    if link.master != net.bridge:
        drift["master"] = net.bridge
    if net.mtu and link.mtu != net.mtu:
        drift["mtu"] = net.mtu
    if not link.up:
        drift["up"] = True
    _want(facts, key, Step("link.set", {"name": name, **drift}) if drift else None, "modify")
