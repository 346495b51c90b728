"""Per-NIC tuning of QEMU's tap backend and virtio front end (the seed's `sndbuf=`,
`vnet_hdr=`, `vhost=`, `vectors=`, `queues=`). Pure: the caller says what the host offers."""

from __future__ import annotations

from .. import naming
from ..errors import InputError
from ..model import Guest, Network, Nic

Pairs = list[tuple[str, object]]


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


def tap_pairs(guest: Guest, nic: Nic, vhost_net: bool) -> Pairs:
    """`-netdev tap` options past ifname and scripts. vhost auto: on for virtio where the host
    has /dev/vhost-net. A captured NIC runs without vhost (the kernel would move its frames
    past QEMU's filter) and without vnet headers (they would precede every captured frame)."""
    t, pairs = nic.tuning, []
    if t.vhost == "on" or (t.vhost == "auto" and vhost_net and virtio(nic) and not t.capture):
        pairs.append(("vhost", "on"))
    elif t.vhost == "off" or (t.capture and vhost_net and virtio(nic)):
        pairs.append(("vhost", "off"))
    if guest.queues and virtio(nic):
        pairs.append(("queues", guest.queues))
    if t.sndbuf is not None:
        pairs.append(("sndbuf", t.sndbuf))
    vnet_hdr = False if t.capture else t.vnet_hdr
    if vnet_hdr is not None:
        pairs.append(("vnet_hdr", "on" if vnet_hdr else "off"))
    return pairs


def device_pairs(guest: Guest, nic: Nic, bridged: bool) -> Pairs:
    """Front-end options: multi-queue virtio wants 2 * queues + 2 MSI-X vectors unless the
    file gives `vectors`."""
    vectors = nic.tuning.vectors
    if guest.queues and bridged and virtio(nic):
        return [("mq", "on"), ("vectors", 2 * guest.queues + 2 if vectors is None else vectors)]
    return [] if vectors is None else [("vectors", vectors)]


def capture_args(nic: Nic, index: int, netdev: str, syntax: str, where: str) -> list[str]:
    """The seed's `-net dump,file=` as QEMU 7.2 spells it: a filter-dump object on the netdev."""
    if not nic.tuning.capture:
        return []
    if syntax == "legacy":
        raise InputError(f"{where}.capture: QEMU dropped -net dump; a capture needs --syntax netdev "
                         "(-object filter-dump names the NIC's -netdev id)")
    file = nic.tuning.capture.replace(",", ",,")
    return ["-object", f"filter-dump,id=capture{index},netdev={netdev},file={file}"]


def helper_pairs(net: Network, helper: str, where: str) -> Pairs:
    """The seed's `-netdev bridge,br=,helper=`: QEMU runs qemu-bridge-helper, which creates the
    tap and attaches it to a bridge its ACL allows, so QEMU itself needs no privileges."""
    if not net.allow_unprivileged:
        raise InputError(f"{where}: networks.{net.name} does not set allow_unprivileged = true, so "
                         f"qemu-bridge-helper would refuse bridge {net.bridge}")
    return [("br", net.bridge), ("helper", helper)]


def vde_pairs(net: Network, state_dir: str | None) -> Pairs:
    """The seed's `-net vde,sock=`: the control directory of the switch kvmnet runs."""
    if state_dir is None:
        raise InputError(f"networks.{net.name}: a vde network's socket is in kvmnet's state dir, which is not known here")
    return [("sock", naming.vde_paths(state_dir, net.name)["ctl"])]
