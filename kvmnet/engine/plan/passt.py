"""Facts about passt. Apply starts no passt (`kvmnet run` and `kvmnet passt start` do, next to
QEMU), but each one they start is recorded with the step that stops it, so that destroy stops
it too. Here: the file's passt NICs are wanted as they are (a running passt is left alone),
and a recorded one the file no longer has is stopped by its recorded undo. Pure."""

from __future__ import annotations

from ...model import Topology
from ..steps import Step
from .facts import Facts


def key(guest: str, index: int) -> str:
    return f"passt:{guest}:{index}"


def stop_step(guest: str, index: int, directory: str) -> Step:
    """Stop the passt serving DIRECTORY/sock and remove its directory (naming.passt_dir)."""
    return Step("passt.stop", {"guest": guest, "nic": index, "dir": directory})


def nics(facts: Facts, topo: Topology) -> None:
    served = {net.name for net in topo.networks if net.mode == "passt"}
    if not served:  # (most topologies: no pass over their guests' NICs)
        return
    for guest in topo.guests:
        for i, nic in enumerate(guest.nics):
            if nic.network in served:
                facts.want(key(guest.name, i), None)
