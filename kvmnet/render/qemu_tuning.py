"""Per-NIC tuning of QEMU's tap backend and virtio front end (the seed's `sndbuf=`,
`vnet_hdr=`, `vhost=`, `vectors=`, `queues=`). Pure: the caller says what the host offers."""

from __future__ import annotations

from ..model import Guest, Nic


def virtio(nic: Nic) -> bool:
    return nic.model.startswith("virtio")


def multi_queue(guest: Guest, nic: Nic) -> bool:
    """Does QEMU open this NIC's tap with more than one queue? Then the tap must have been
    created multi-queue (IFF_MULTI_QUEUE): the kernel refuses the open otherwise."""
    return bool(guest.queues and guest.queues > 1 and virtio(nic))


def guest_wide(guest: Guest) -> list[str]:
    """Arguments for the guest as a whole: `-nic none` for a guest without NICs (the seed's
    `-net none`), or QEMU adds its default user-mode NIC."""
    return [] if guest.nics else ["-nic", "none"]
