"""Facts about sysctls: IPv6 off on virtual bridges, forwarding for routing networks, and
route_localnet for 127.0.0.1 port forwards. Pure."""

from __future__ import annotations

from ...model import ROUTING_MODES, Topology, VIRTUAL_MODES
from ...observed import Observed
from ..steps import Step
from .facts import Facts

IP_FORWARD = "net/ipv4/ip_forward"
IP6_FORWARD = "net/ipv6/conf/all/forwarding"
SHARED_KEYS = (f"sysctl:{IP_FORWARD}", f"sysctl:{IP6_FORWARD}")  # host-wide facts several topologies may need
BR_NF_CALL = "net/bridge/bridge-nf-call-iptables"  # br_netfilter: bridged frames meet iptables
BR_NF_CALL6 = "net/bridge/bridge-nf-call-ip6tables"  # ... and ip6tables


def shared(key: str) -> bool:
    """A host-wide fact several topologies may need: handed over on destroy, not reverted."""
    # an uplink's accept_ra=2 (forwarding6); a bridge's own accept_ra is in one record only,
    # so it is never handed over
    return key in SHARED_KEYS or key.startswith("sysctl:net/ipv6/conf/") and key.endswith("/accept_ra")


def paths(topo: Topology, routes=()) -> list[str]:
    """Every sysctl the plan may compare, so observe() can read just those."""
    out = ipv6_paths(topo, routes)
    for net in topo.networks:
        if net.mode == "bridge":
            out += [BR_NF_CALL, BR_NF_CALL6, _port_ipv6(net), IP6_FORWARD]
            out += [f"net/ipv6/conf/{dev}/{name}" for dev in (net.uplink, net.bridge, "default")
                    for name in FROM_UPLINK + ("disable_ipv6",)]
        if net.mode in VIRTUAL_MODES:
            out.append(f"net/ipv6/conf/{net.bridge}/disable_ipv6")
        if net.mode == "isolated":
            out += [BR_NF_CALL, BR_NF_CALL6]  # (plan/firewall.py: same-bridge frames under Docker's DROP)
        if net.mode in ROUTING_MODES:
            out += [IP_FORWARD, BR_NF_CALL6]  # (plan/firewall.py: bridged IPv6 under Docker's ip6tables DROP)
        if net.mode == "nat" and net.forwards:
            out.append(f"net/ipv4/conf/{net.bridge}/route_localnet")
    return sorted(set(out))


def _restore(step: Step, observed: Observed) -> Step | None:
    """Undo of sysctl.set: the value read before (none if the sysctl did not exist yet, as a
    bridge's own sysctls do not before the bridge)."""
    old = observed.sysctls.get(step.args["path"])
    return Step("sysctl.set", {"path": step.args["path"], "value": old}) if old is not None else None


UNDO = {"sysctl.set": _restore}


BRIDGE_V6_SYSCTLS = ("accept_ra", "autoconf", "accept_dad")


def want(facts: Facts, path: str, value: str, before: str | None = None) -> None:
    """`before`: what the sysctl will hold if it does not exist yet (a new link's default)."""
    current = facts.obs.sysctls.get(path)
    current = before if current is None else current
    do = None if current == value else Step("sysctl.set", {"path": path, "value": value})
    facts.want(f"sysctl:{path}", do, _restore(do, facts.obs) if do else None)


def bridge(facts: Facts, net) -> None:
    if net.subnet6 is None:
        want(facts, f"net/ipv6/conf/{net.bridge}/disable_ipv6", "1")
        return
    # libvirt's settings: the bridge is the router of its prefix, it never configures itself
    # from (its own guests') router advertisements; set before IPv6 comes on. accept_dad=0: the
    # kernel makes the bridge's link-local address only when the first port gets carrier, and
    # while DAD keeps it tentative (1-2 s) dnsmasq answers router solicitations from the global
    # gateway address, which clients must drop (RFC 4861 6.1.2) and re-solicit 4, 8, 16 s later
    for name in BRIDGE_V6_SYSCTLS:
        want(facts, f"net/ipv6/conf/{net.bridge}/{name}", "0")
    want(facts, f"net/ipv6/conf/{net.bridge}/disable_ipv6", "0")


def _port_ipv6(net) -> str:
    return f"net/ipv6/conf/{net.uplink}/disable_ipv6"


FROM_UPLINK = ("accept_ra", "autoconf")  # a bridge-mode bridge learns from RAs as its uplink did


def _uplink_ipv6_was_off(facts: Facts, net, record) -> bool:
    """Was the uplink's IPv6 off before kvmnet made it a port? If kvmnet turned it off, its
    recorded undo says what it was; otherwise it is as it was."""
    key = f"sysctl:{_port_ipv6(net)}"
    undo = next((u for k, u in record.entries if k == key and u), None)
    return (undo["args"]["value"] if undo else facts.obs.sysctls.get(_port_ipv6(net))) == "1"


def uplink_port(facts: Facts, net, topo: Topology, record) -> None:
    """Bridge mode: IPv6 off on the uplink once it is a port (after its addresses and routes
    moved). A port's own IPv6 cannot work, every frame it receives goes to the bridge, yet the
    kernel's routes on it (the prefix routes and the default route it learned from router
    advertisements, left to the kernel) would keep taking the LAN's traffic from the bridge's.
    Destroy turns it back on, which makes the kernel solicit router advertisements at once: the
    uplink's SLAAC resumes without waiting for the router's next unsolicited one."""
    if facts.obs.sysctls.get(_port_ipv6(net)) is None:  # no IPv6 in this kernel
        return
    was_off = _uplink_ipv6_was_off(facts, net, record)
    want(facts, _port_ipv6(net), "1")
    # The bridge is the host's link to the LAN now: it takes the uplink's router-advertisement
    # settings (a new bridge has the kernel's defaults: SLAAC where the uplink had none, or
    # accept_ra=1, which IPv6 forwarding turns into "ignore RAs": no default route)
    forwarding = _ipv6_routing(topo) or facts.obs.sysctls.get(IP6_FORWARD) == "1"
    for name in FROM_UPLINK:
        value = facts.obs.sysctls.get(f"net/ipv6/conf/{net.uplink}/{name}")
        if value is not None:  # (a bridge not made yet will have the defaults: often no step at all)
            want(facts, f"net/ipv6/conf/{net.bridge}/{name}", "2" if (name, value, forwarding) == ("accept_ra", "1", True)
                 else value, facts.obs.sysctls.get(f"net/ipv6/conf/default/{name}"))
    # and no IPv6 at all where the uplink had none
    want(facts, f"net/ipv6/conf/{net.bridge}/disable_ipv6", "1" if was_off else "0",
         facts.obs.sysctls.get("net/ipv6/conf/default/disable_ipv6"))


def _ipv6_routing(topo: Topology) -> bool:
    return any(n.mode in ROUTING_MODES and n.subnet6 is not None for n in topo.networks)


def ra_uplinks(routes) -> list[str]:
    """Links the host configures from router advertisements (it has routes learned from them)."""
    return sorted({r.dev for r in routes if r.family == 6 and r.proto == "ra"})


def ipv6_paths(topo: Topology, routes=()) -> list[str]:
    out = []
    for net in topo.networks:
        if net.mode in VIRTUAL_MODES and net.subnet6 is not None:
            out += [f"net/ipv6/conf/{net.bridge}/{name}" for name in BRIDGE_V6_SYSCTLS]
    if _ipv6_routing(topo):
        out.append(IP6_FORWARD)
        bridges = {n.bridge for n in topo.networks}
        out += [f"net/ipv6/conf/{dev}/accept_ra" for dev in ra_uplinks(routes) if dev not in bridges]
    return out


def forwarding6(facts: Facts, topo: Topology) -> None:
    """IPv6 forwarding for nat/routed networks with a prefix. Forwarding makes the kernel ignore
    router advertisements on links with accept_ra=1: the host's own uplinks that rely on them
    get accept_ra=2 (accept them while forwarding) first, so the host keeps its default route."""
    if not _ipv6_routing(topo):
        return
    prefix = "net/ipv6/conf/"
    for path in sorted(p for p in facts.obs.sysctls if p.startswith(prefix) and p.endswith("/accept_ra")):
        # "2" already: wanted all the same, so a topology that set it hands it over on destroy
        if facts.obs.sysctls[path] in ("1", "2") and not _is_ours(topo, path):
            want(facts, path, "2")
    want(facts, IP6_FORWARD, "1")


def _is_ours(topo: Topology, path: str) -> bool:
    """A bridge of the topology (planned on its own), or an uplink it makes a port (IPv6 off)."""
    return path.split("/")[3] in {n.bridge for n in topo.networks} | {n.uplink for n in topo.networks if n.mode == "bridge"}


def forwarding(facts: Facts, topo: Topology) -> None:
    for net in topo.networks:
        if net.mode in ROUTING_MODES:
            want(facts, IP_FORWARD, "1")
        if net.mode == "nat" and net.forwards:
            # 127.0.0.1:PORT forwards route a loopback source out of the bridge; the guard
            # chain drops anything arriving on the bridge for 127/8, so nothing else opens.
            want(facts, f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
