"""Facts about bandwidth limits: a tbf on a link's egress (`inbound`, towards the guests), and
an ingress redirect to an ifb shaped the same way (`outbound`). A NIC's limit sits on its tap,
a network's on its bridge device (so it is shared by all the traffic the host routes for the
network's guests; traffic between two guests of the bridge never passes it). Pure."""

from __future__ import annotations

from ...model import Bandwidth, Topology
from ...observed import Observed
from ...render.tc import default_burst, ifb_name
from ..steps import Step
from .facts import Facts


def limits(topo: Topology) -> list[tuple[str, Bandwidth]]:
    """(link, limit) for every limit the topology sets, on links kvmnet owns."""
    out = [(net.bridge, net.bandwidth) for net in topo.networks if net.bandwidth and net.bridged]
    for guest in topo.guests:
        for nic in guest.nics:
            if nic.bandwidth and topo.network(nic.network).bridged:
                out.append((nic.tap, nic.bandwidth))
    return out


def devices(topo: Topology) -> list[str]:
    """The links whose qdiscs observe() reads: the limited links and their ifbs."""
    devs = []
    for dev, bw in limits(topo):
        devs.append(dev)
        if bw.outbound:
            devs.append(ifb_name(topo.name, dev))
    return devs


def _tbf_holds(obs: Observed, dev: str, rate: int, burst: int) -> bool:
    root = (obs.tc.get(dev) or {}).get("root") or {}
    # tc keeps the rate in bytes/s and the burst in scheduler ticks: it reads back rounded
    return (root.get("kind") == "tbf" and root.get("rate") == rate // 8
            and abs(root.get("burst", 0) - burst) <= burst // 50 + 1)


def holds(obs: Observed, args: dict) -> bool:
    if args["direction"] == "in":
        return _tbf_holds(obs, args["dev"], args["rate"], args["burst"])
    ifb = obs.links.get(args["ifb"])
    return (ifb is not None and ifb.up and (obs.tc.get(args["dev"]) or {}).get("redirect") == args["ifb"]
            and _tbf_holds(obs, args["ifb"], args["rate"], args["burst"]))


def plan(facts: Facts, topo: Topology, recorded: set[str]) -> None:
    for dev, bw in limits(topo):
        for direction, bits in (("in", bw.inbound), ("out", bw.outbound)):
            if not bits:
                continue
            args = {"dev": dev, "direction": direction, "rate": bits, "burst": bw.burst or default_burst(bits)}
            if direction == "out":
                args["ifb"] = ifb_name(topo.name, dev)
            key = f"tc:{direction}:{dev}"
            undo = Step("tc.unlimit", {k: args[k] for k in ("dev", "direction", "ifb") if k in args})
            do = None if holds(facts.obs, args) else Step("tc.limit", args)
            facts.want(key, do, undo, "modify" if key in recorded else "create")


# a recorded limit the file no longer wants is removed by its tc.unlimit; nothing puts it back
UNDO = {"tc.unlimit": lambda step, observed: None}
