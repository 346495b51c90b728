"""Desired topology + observed host + state record -> ordered list of Actions. Pure.

Each fact kvmnet wants on the host has a key ("link:virbr0", "addr:virbr0:192.168.122.1/24").
A fact that holds needs no action; a missing one gets a "create" action; a recorded fact the
file no longer wants gets a "remove" action (its recorded undo). Removals come first, newest
first, so a renamed bridge frees its addresses before the new one takes them.

Each concern plans its own facts, each action with its undo: links (bridges, taps, uplinks,
addresses, routes), sysctls, firewall (kvmnet's table, accepts in the host's FORWARD) and dnsmasq.
"""

from __future__ import annotations

from ... import naming
from ...valueclass import value
from ...model import Topology
from ...observed import Observed
from ...render.qemu_tuning import multi_queue
from ..record import Record
from ..steps import Action, Step
from . import bandwidth, dnsmasq, firewall, firewalld, links, macvtap, overlay, passt, qemu_acl, sysctls, vde
from .facts import Facts

# op -> its undo, for the recorded steps a removal replays; each concern owns its ops
UNDO = {**links.UNDO, **sysctls.UNDO, **firewall.UNDO, **dnsmasq.UNDO, **firewalld.UNDO, **bandwidth.UNDO,
        **qemu_acl.UNDO, **vde.UNDO, **overlay.UNDO}
SHARED_KEYS = sysctls.SHARED_KEYS + firewalld.SHARED_KEYS  # host-wide facts: handed over on destroy


def shared(key: str) -> bool:
    """A host-wide fact several topologies may need: handed over on destroy, not reverted."""
    return sysctls.shared(key) or key in firewalld.SHARED_KEYS


@value
class Plan:
    actions: list[Action]  # removals first, then what is missing or drifted
    wanted: frozenset[str]  # every fact's key, held or not


def _removals(record: Record, wanted: set[str], observed: Observed) -> list[Action]:
    out = []
    for key, undo in reversed(record.entries):
        if key in wanted or undo is None:
            continue
        step = Step.from_json(undo)
        inverse = UNDO.get(step.op)
        out.append(Action(key, "remove", step, inverse(step, observed) if inverse else None))
    return out


def make(topo: Topology, observed: Observed, record: Record, state_dir: str,
         firewall_backend: str = "nftables") -> Plan:
    facts = Facts(observed)
    for net in topo.networks:
        if net.mode == "bridge":
            links.uplink(facts, net, record, naming.bridge_group(topo.name))
            sysctls.uplink_port(facts, net, topo, record)
        elif net.bridged:
            links.bridge(facts, net, net.mac or naming.bridge_mac(topo.name, net.name), naming.bridge_group(topo.name))
            sysctls.bridge(facts, net)
            if net.gateway_interface is not None:
                links.addr(facts, net.bridge, str(net.gateway_interface))
            if net.gateway6_interface is not None:
                links.gateway6(facts, net)
    overlay.vxlans(facts, topo)  # stretched networks: each bridge's VXLAN port (after the bridges)
    for guest in topo.guests:
        for nic in guest.nics:
            net = topo.network(nic.network)
            if net.bridged and nic.tap:  # (no tap here for a guest of another host)
                links.tap(facts, topo, net, nic.tap, nic.mac, multi_queue(guest, nic))
    macvtap.plan(facts, topo)
    bandwidth.plan(facts, topo, record.keys())
    sysctls.forwarding(facts, topo)
    sysctls.forwarding6(facts, topo)
    firewall.accepts(facts, topo, firewall_backend)
    firewall.table(facts, topo, firewall_backend, record)
    firewalld.zones(facts, topo, record.keys())
    dnsmasq.instances(facts, topo, state_dir, record.keys())
    qemu_acl.allows(facts, topo)
    vde.switches(facts, topo, state_dir)
    passt.nics(facts, topo)  # started next to QEMU, recorded then: kept while the file has them
    overlay.frr(facts, topo, state_dir)  # EVPN: kvmnet's own zebra + bgpd (after the VXLAN devices)
    return Plan(_removals(record, facts.wanted, observed) + facts.actions, frozenset(facts.wanted))


def plan(topo: Topology, observed: Observed, record: Record, state_dir: str,
         firewall_backend: str = "nftables") -> list[Action]:
    return make(topo, observed, record, state_dir, firewall_backend).actions
