"""A stand-in record for `destroy --force`, when the real one is lost or corrupt.

It names only what kvmnet itself derives from the topology (its bridges, taps, firewall table
and dnsmasq instances, verified by pid file + executable + command line), never anything found
by pattern-matching, so others' objects are safe. What cannot be reconstructed (an uplink's
original addresses and routes, sysctls' original values) is left as it is.
"""

from __future__ import annotations

from .. import naming
from ..host import system
from ..model import Topology
from ..render import nft
from .plan import dnsmasq as dnsmasq_plan
from .plan.firewall import delete_step
from .record import Record
from .steps import Step


def forced_record(topo: Topology, state_root: str, backend: str = "nftables", host=None) -> Record:
    host = host or system.default()
    rec = Record(topo.name, topo.path)
    add = lambda key, step: rec.entries.append([key, step.to_json()])  # noqa: E731
    for net in topo.networks:
        if net.bridged:
            if net.mode == "bridge":
                add(f"master:{net.uplink}", Step("link.set", {"name": net.uplink, "master": ""}))
            add(f"link:{net.bridge}", Step("link.del", {"name": net.bridge}))
    for guest in topo.guests:
        for nic in guest.nics:
            if nic.tap:
                add(f"link:{nic.tap}", Step("link.del", {"name": nic.tap}))
    if nft.needs_table(topo):
        table = naming.nft_table(topo.name)
        add(f"firewall:{backend}:{table}", delete_step(backend, table))
        add(f"firewall:iptables:{table}", delete_step("iptables", naming.iptables_prefix(topo.name)))
    sdir = naming.state_dir_for(topo.name, state_root)
    for net in dnsmasq_plan.networks(topo):
        add(f"dnsmasq:{net.name}", dnsmasq_plan.stop_step(net.name, naming.dnsmasq_paths(sdir, net.name),
                                                          host.dnsmasq_binary()))
    return rec
