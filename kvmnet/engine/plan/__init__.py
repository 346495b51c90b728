"""Desired topology + observed host + state record -> ordered list of Actions. Pure.

Each fact kvmnet wants on the host has a key ("link:virbr0", "addr:virbr0:192.168.122.1/24").
A fact that holds needs no action; a missing one gets a "create" action; a recorded fact the
file no longer wants gets a "remove" action (its recorded undo). Removals come first, newest
first, so a renamed bridge frees its addresses before the new one takes them.
"""

from __future__ import annotations

from ... import naming
from .forwarding import firewall_actions, invert_dnsmasq, invert_firewall
from ...model import Network, ROUTING_MODES, Topology, VIRTUAL_MODES
from ...observed import Observed
from ..record import Record
from ..steps import Action, Step


def effective_forward_delay(stp: bool, delay: int) -> int:
    """With STP on, the kernel clamps the forward delay to 2-30 s (as libvirt's delay=0 gets)."""
    return min(max(delay, 2), 30) if stp else delay


def sysctl_paths(topo: Topology) -> list[str]:
    """Every sysctl the plan may compare, so observe() can read just those."""
    paths = []
    for net in topo.networks:
        if net.mode == "bridge":
            paths.append("net/bridge/bridge-nf-call-iptables")
        if net.mode in VIRTUAL_MODES:
            paths.append(f"net/ipv6/conf/{net.bridge}/disable_ipv6")
        if net.mode in ROUTING_MODES:
            paths.append("net/ipv4/ip_forward")
        if net.mode == "nat" and net.forwards:
            paths.append(f"net/ipv4/conf/{net.bridge}/route_localnet")
    return sorted(set(paths))


def uplink_snapshot(net: Network, observed: Observed, record: Record) -> dict:
    """The uplink's IPv4 addresses and routes, as they were before kvmnet first moved them."""
    if net.name in record.uplinks:
        return record.uplinks[net.name]
    link = observed.links.get(net.uplink)
    addrs = sorted(a for a in observed.addrs_of(net.uplink) if ":" not in a)
    routes = [r.as_dict() for r in observed.routes
              if r.dev == net.uplink and r.family == 4 and r.proto != "kernel"]
    return {"mac": link.mac if link else None, "addrs": addrs, "routes": routes}


def invert(step: Step, observed: Observed) -> Step | None:
    """The step that puts back what `step` changes, judged from the host as observed now."""
    a, op = step.args, step.op
    if op in ("bridge.add", "tap.add"):
        return Step("link.del", {"name": a["name"]})
    if op == "link.del":
        link = observed.links.get(a["name"])
        if link is None:
            return None
        if link.kind == "bridge":
            return Step("bridge.add", {"name": link.name, "mac": link.mac, "mtu": link.mtu,
                                       "stp": link.stp, "forward_delay": link.forward_delay})
        if link.kind == "tun":
            return Step("tap.add", {"name": link.name, "master": link.master or "", "mac": link.mac, "mtu": link.mtu,
                                    "group": link.group})
        return None
    if op == "link.set":
        link = observed.links.get(a["name"])
        if link is None:
            return None
        old = {"name": a["name"]}
        for attr in ("master", "mac", "mtu", "up", "stp", "forward_delay"):
            if attr in a:
                value = getattr(link, attr)
                old[attr] = (value or "") if attr == "master" else value
        return Step("link.set", old)
    pairs = {"addr.add": "addr.del", "addr.del": "addr.add", "route.add": "route.del", "route.del": "route.add",
             "fwaccept.add": "fwaccept.del", "fwaccept.del": "fwaccept.add"}
    if op in pairs:
        return Step(pairs[op], dict(a))
    if op == "sysctl.set":
        old = observed.sysctls.get(a["path"])
        return Step("sysctl.set", {"path": a["path"], "value": old}) if old is not None else None
    if op == "firewall.apply":
        return invert_firewall(step)
    if op == "dnsmasq.start":
        return invert_dnsmasq(step)
    return None


class _Planner:
    def __init__(self, topo: Topology, observed: Observed, record: Record):
        self.topo, self.obs, self.record = topo, observed, record
        self.actions: list[Action] = []
        self.wanted: set[str] = set()

    def want(self, key: str, do: Step | None, kind: str = "create") -> None:
        """Register a fact; `do` is None when it already holds."""
        self.wanted.add(key)
        if do is not None:
            self.actions.append(Action(key, kind, do, invert(do, self.obs)))

    def sysctl(self, path: str, value: str) -> None:
        current = self.obs.sysctls.get(path)
        self.want(f"sysctl:{path}", None if current == value else Step("sysctl.set", {"path": path, "value": value}))

    def bridge(self, net: Network, mac: str | None) -> None:
        delay = effective_forward_delay(net.stp, net.forward_delay)
        link = self.obs.links.get(net.bridge)
        key = f"link:{net.bridge}"
        if link is None:
            self.want(key, Step("bridge.add", {"name": net.bridge, "mac": mac, "mtu": net.mtu,
                                               "stp": net.stp, "forward_delay": delay}))
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
        self.want(key, Step("link.set", {"name": net.bridge, **drift}) if drift else None, "modify")

    def addr(self, link: str, cidr: str, present: bool = True) -> None:
        has = cidr in self.obs.addrs_of(link)
        if present:
            self.want(f"addr:{link}:{cidr}", None if has else Step("addr.add", {"link": link, "cidr": cidr}))
        else:
            self.want(f"noaddr:{link}:{cidr}", Step("addr.del", {"link": link, "cidr": cidr}) if has else None)

    def route(self, route: dict, present: bool = True) -> None:
        has = any(r.dst == route["dst"] and r.dev == route["dev"] and r.gateway == route.get("gateway")
                  for r in self.obs.routes)
        key = f"{'route' if present else 'noroute'}:{route['dev']}:{route['dst']}:{route.get('gateway')}"
        if present:
            self.want(key, None if has else Step("route.add", {"route": route}))
        else:
            self.want(key, Step("route.del", {"route": route}) if has else None)

    def uplink(self, net: Network) -> None:
        snap = uplink_snapshot(net, self.obs, self.record)
        link = self.obs.links.get(net.uplink)
        self.bridge(net, snap["mac"])
        attach = None if link and link.master == net.bridge else Step("link.set", {"name": net.uplink, "master": net.bridge})
        self.want(f"master:{net.uplink}", attach)
        for cidr in snap["addrs"]:
            self.addr(net.bridge, cidr)
        for route in snap["routes"]:
            self.route(route, present=False)
        for cidr in snap["addrs"]:
            self.addr(net.uplink, cidr, present=False)
        for route in snap["routes"]:
            self.route(dict(route, dev=net.bridge))

    def tap(self, net: Network, tap: str, guest_mac: str) -> None:
        link = self.obs.links.get(tap)
        key = f"link:{tap}"
        mac = naming.tap_host_mac(guest_mac)
        if link is None:
            self.want(key, Step("tap.add", {"name": tap, "master": net.bridge, "mac": mac, "mtu": net.mtu,
                                            "group": naming.link_group(self.topo.name)}))
            return
        drift = {}
        if link.master != net.bridge:
            drift["master"] = net.bridge
        if net.mtu and link.mtu != net.mtu:
            drift["mtu"] = net.mtu
        if not link.up:
            drift["up"] = True
        self.want(key, Step("link.set", {"name": tap, **drift}) if drift else None, "modify")

    def result(self) -> list[Action]:
        return self.removals() + self.actions

    def removals(self) -> list[Action]:
        out = []
        for key, undo in reversed(self.record.entries):
            if key in self.wanted or undo is None:
                continue
            step = Step.from_json(undo)
            out.append(Action(key, "remove", step, invert(step, self.obs)))
        return out


def plan(topo: Topology, observed: Observed, record: Record, state_dir: str,
         firewall_backend: str = "nftables") -> list[Action]:
    return planner(topo, observed, record, state_dir, firewall_backend).result()


def planner(topo: Topology, observed: Observed, record: Record, state_dir: str,
            firewall_backend: str = "nftables") -> "_Planner":
    p = _Planner(topo, observed, record)
    for net in topo.networks:
        if net.mode == "bridge":
            p.uplink(net)
        elif net.bridged:
            p.bridge(net, naming.bridge_mac(topo.name, net.name))
            p.sysctl(f"net/ipv6/conf/{net.bridge}/disable_ipv6", "1")
            if net.gateway_interface is not None:
                p.addr(net.bridge, str(net.gateway_interface))
    for guest in topo.guests:
        for nic in guest.nics:
            net = topo.network(nic.network)
            if net.bridged:
                p.tap(net, nic.tap, nic.mac)
    for key, do in firewall_actions(topo, observed, firewall_backend, state_dir, p.sysctl):
        p.want(key, do)
    return p
