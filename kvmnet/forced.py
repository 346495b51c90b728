"""A stand-in record for `destroy --force`, when the real one is lost or corrupt.

It names only what kvmnet itself derives from the topology (its bridges, taps, firewall table
and dnsmasq), never anything found by pattern-matching, so others' objects are safe.
What cannot be reconstructed (an uplink's original addresses, sysctl originals) is not touched.
"""

from __future__ import annotations

from .model import Topology
from .record import Record
from .steps import Step


def forced_record(topo: Topology, state_root: str) -> Record:
    rec = Record(topo.name, topo.path)
    for net in topo.networks:
        if net.bridged:
            if net.mode == "bridge":
                rec.entries.append([f"master:{net.uplink}", Step("link.set", {"name": net.uplink, "master": ""}).to_json()])
            rec.entries.append([f"link:{net.bridge}", Step("link.del", {"name": net.bridge}).to_json()])
    for guest in topo.guests:
        for nic in guest.nics:
            if nic.tap:
                rec.entries.append([f"link:{nic.tap}", Step("link.del", {"name": nic.tap}).to_json()])
    return rec
