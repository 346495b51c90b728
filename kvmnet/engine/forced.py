"""A stand-in record for `destroy --force`, when the real one is lost or corrupt.

It names only what kvmnet itself derives from the topology (its bridges, taps, firewall table
and dnsmasq instances, verified by pid file + executable + command line), never anything found
by pattern-matching, so others' objects are safe. What cannot be reconstructed (an uplink's
original addresses and routes, sysctls' original values) is left as it is.
"""

from __future__ import annotations

from .. import naming
from .plan.forwarding import dnsmasq_networks
from ..host import dnsmasq
from ..model import Topology
from .record import Record
from ..render import nft
from .steps import Step


def forced_record(topo: Topology, state_root: str, backend: str = "nftables") -> Record:
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
        add(f"firewall:{backend}:{table}", Step("firewall.delete", {
            "backend": backend, "table": table, "delete": nft.delete_text(table),
            "summary": f"table inet {table}", "command": f"nft delete table inet {table}"}))
        prefix = naming.iptables_prefix(topo.name)
        add(f"firewall:iptables:{table}", Step("firewall.delete", {
            "backend": "iptables", "table": prefix, "summary": f"chains {prefix}-*",
            "command": f"(remove chains {prefix}-* and their jumps)"}))
    sdir = naming.state_dir_for(topo.name, state_root)
    for net in dnsmasq_networks(topo):
        paths = naming.dnsmasq_paths(sdir, net.name)
        add(f"dnsmasq:{net.name}", Step("dnsmasq.stop", {
            "network": net.name, "conf": paths["conf"], "pid_file": paths["pid"], "leases": paths["leases"],
            "exe": dnsmasq.binary(), "purge": True}))
    return rec
