"""What a file may leave to kvmnet, filled in once every network and NIC is read: a MAC for
each NIC without one, a tap for each NIC on a bridged network. Deterministic, so re-applying
a file finds what an earlier run made. Checks nothing: crosscheck.py validates the result."""

from __future__ import annotations

from .. import naming
from ..model import Guest, Network
from .values import evolve


def derive(topology: str, networks: list[Network], guests: list[Guest]) -> list[Guest]:
    by_name = {n.name: n for n in networks}
    macs: set[str] = set()  # every MAC so far, given or derived, in file order
    out = []
    for guest in guests:
        nics = []
        for i, nic in enumerate(guest.nics):
            net = by_name.get(nic.network)
            if net is not None:  # else crosscheck reports the network; nothing to derive
                mac = nic.mac or _free_mac(topology, guest.name, i, macs)
                macs.add(mac)
                tap = (nic.tap or naming.tap_name(topology, guest.name, i)) if net.bridged else nic.tap
                nic = evolve(nic, mac=mac, tap=tap)
            nics.append(nic)
        out.append(evolve(guest, nics=tuple(nics)))
    return out


def _free_mac(topology: str, guest: str, index: int, taken: set[str]) -> str:
    """24 hash bits collide now and then: derive again with a salt, deterministically."""
    salt = 0
    mac = naming.guest_mac(topology, guest, index)
    while mac in taken:
        salt += 1
        mac = naming.guest_mac(topology, guest, index, salt)
    return mac
