"""Facts about sysctls: IPv6 off on virtual bridges, forwarding for routing networks, and
route_localnet for 127.0.0.1 port forwards. Pure."""

from __future__ import annotations

from ...model import ROUTING_MODES, Topology, VIRTUAL_MODES
from ...observed import Observed
from ..steps import Step
from .facts import Facts

IP_FORWARD = "net/ipv4/ip_forward"
SHARED_KEYS = (f"sysctl:{IP_FORWARD}",)  # host-wide facts several topologies may need
BR_NF_CALL = "net/bridge/bridge-nf-call-iptables"  # br_netfilter: bridged frames meet iptables


def paths(topo: Topology) -> list[str]:
    """Every sysctl the plan may compare, so observe() can read just those."""
    out = []
    for net in topo.networks:
        if net.mode == "bridge":
            out.append(BR_NF_CALL)
        if net.mode in VIRTUAL_MODES:
            out.append(f"net/ipv6/conf/{net.bridge}/disable_ipv6")
        if net.mode in ROUTING_MODES:
            out.append(IP_FORWARD)
        if net.mode == "nat" and net.forwards:
            out.append(f"net/ipv4/conf/{net.bridge}/route_localnet")
    return sorted(set(out))


def _restore(step: Step, observed: Observed) -> Step | None:
    """Undo of sysctl.set: the value read before (none if the sysctl did not exist yet, as a
    bridge's own sysctls do not before the bridge)."""
    old = observed.sysctls.get(step.args["path"])
    return Step("sysctl.set", {"path": step.args["path"], "value": old}) if old is not None else None


UNDO = {"sysctl.set": _restore}


def want(facts: Facts, path: str, value: str) -> None:
    do = None if facts.obs.sysctls.get(path) == value else Step("sysctl.set", {"path": path, "value": value})
    facts.want(f"sysctl:{path}", do, _restore(do, facts.obs) if do else None)


def bridge(facts: Facts, net) -> None:
    want(facts, f"net/ipv6/conf/{net.bridge}/disable_ipv6", "1")


def forwarding(facts: Facts, topo: Topology) -> None:
    for net in topo.networks:
        if net.mode in ROUTING_MODES:
            want(facts, IP_FORWARD, "1")
        if net.mode == "nat" and net.forwards:
            # 127.0.0.1:PORT forwards route a loopback source out of the bridge; the guard
            # chain drops anything arriving on the bridge for 127/8, so nothing else opens.
            want(facts, f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
