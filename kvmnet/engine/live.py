"""What of a topology is on this host, per object, for `kvmnet graph --live`. Changes nothing.

Each fact the plan wants has a key ("link:virbr0", "addr:virbr0:...", "dnsmasq:nat:default",
"link:kn-web-0", "firewall:nftables:..."). An object (a network, a NIC, a network's forwards) is
"applied" when all its facts hold, "not applied" when none holds and kvmnet recorded none of
them, and "drifted" otherwise (something kvmnet made, or part of it, is missing or changed).
"""

from __future__ import annotations

import re

from ..model import Network, Topology
from .context import Context


def _mentions(key: str, name: str) -> bool:
    return name in re.split(r"[:/]", key)


def network_keys(net: Network, wanted) -> set[str]:
    """The bridge's and uplink's facts, and the network's dnsmasq (`dnsmasq:TOPOLOGY:NET`, or
    `dnsmasq:NET` in records of older versions)."""
    names = [n for n in (net.bridge, net.uplink) if n]
    return {k for k in wanted if _is_dnsmasq_of(k, net.name) or any(_mentions(k, n) for n in names)}


def _is_dnsmasq_of(key: str, network: str) -> bool:
    parts = key.split(":")
    return parts[0] == "dnsmasq" and parts[-1] == network and len(parts) in (2, 3)


def classify(keys: set[str], pending: set[str], recorded: set[str]) -> str | None:
    """applied / drifted / not applied for an object made of `keys` (None: nothing on the host)."""
    if not keys:
        return None
    missing = keys & pending
    if not missing:
        return "applied"
    if missing == keys and not keys & recorded:
        return "not applied"
    return "drifted"


def annotate(topo: Topology, wanted, pending: set[str], recorded: set[str]) -> dict[str, str]:
    """The graph's status map from the plan's facts: which keys it wants, which have an action."""
    out = {}
    firewall = {k for k in wanted if k.startswith("firewall:")}
    for net in topo.networks:
        for key, facts in ((f"network:{net.name}", network_keys(net, wanted)),
                           (f"forwards:{net.name}", firewall if net.forwards and net.mode == "nat" else set())):
            state = classify(facts, pending, recorded)
            if state:
                out[key] = state
    for guest in topo.guests:
        for i, nic in enumerate(guest.nics):
            state = classify({f"link:{nic.tap}"} & set(wanted) if nic.tap else set(), pending, recorded)
            if state:
                out[f"nic:{guest.name}:{i}"] = state
    return out


def status(topo: Topology, state_root: str, host=None) -> dict[str, str]:
    """Observe the host and plan (as `kvmnet plan` does); return the graph's status map."""
    ctx = Context(topo, state_root, host=host)
    pending = {a.key for a in ctx.actions}
    return annotate(topo, ctx.plan.wanted, pending, ctx.record.keys())
