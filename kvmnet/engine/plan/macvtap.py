"""Facts about direct networks: one macvtap per guest NIC on the uplink, carrying the guest's
MAC (QEMU opens /dev/tapN and the guest's frames leave through the uplink as-is), and the
host's own macvlan when the file asks for one: in bridge mode the kernel switches frames
between macvlans of one uplink, which is the only way the host reaches its macvtap guests
(the uplink itself hands them nothing). Pure."""

from __future__ import annotations

from ... import naming
from ...model import Topology
from ..steps import Step
from .facts import Facts
from . import links


def macvtap_name(topology: str, guest: str, index: int) -> str:
    """The same name a tap of that NIC would have: kn-<guest>-<i>."""
    return naming.tap_name(topology, guest, index)


def macvtaps(topo: Topology) -> list[tuple[str, str, str]]:
    """(guest, macvtap name, network) for every NIC on a direct network."""
    direct = {net.name for net in topo.networks if net.mode == "direct"}
    if not direct:  # (most topologies: no pass over their 1000 guests' NICs, twice per apply)
        return []
    return [(g.name, macvtap_name(topo.name, g.name, i), nic.network) for g in topo.guests
            for i, nic in enumerate(g.nics) if nic.network in direct]


def _link(facts: Facts, args: dict) -> None:
    link = facts.obs.links.get(args["name"])
    key = f"link:{args['name']}"
    undo = Step("link.del", {"name": args["name"]})
    if link is None or link.kind != args["kind"]:  # another kind of link by that name: the add fails, loudly
        facts.want(key, Step("macvtap.add", args), undo)
        return
    drift = {}
    if args.get("mac") and link.mac != args["mac"]:
        drift["mac"] = args["mac"]
    if not link.up:
        drift["up"] = True
    facts.want(key, Step("link.set", {"name": args["name"], **drift}) if drift else None, undo, "modify")


def plan(facts: Facts, topo: Topology) -> None:
    for net in topo.networks:
        if net.mode == "direct" and net.host_macvlan:
            _link(facts, {"name": net.host_macvlan, "kind": "macvlan", "uplink": net.uplink, "mode": "bridge"})
            if net.host_address:
                links.addr(facts, net.host_macvlan, net.host_address)
    for guest_name, name, network in macvtaps(topo):
        net = topo.network(network)
        mac = next(n.mac for i, n in enumerate(topo.guest(guest_name).nics)
                   if macvtap_name(topo.name, guest_name, i) == name)
        _link(facts, {"name": name, "kind": "macvtap", "uplink": net.uplink, "mode": net.macvtap_mode, "mac": mac})
