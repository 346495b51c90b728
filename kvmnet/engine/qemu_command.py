"""Build a guest's QEMU command line from the topology and what this host's QEMU offers."""

from __future__ import annotations

import os
import shutil

from ..errors import HostError, InputError
from ..host import qemu
from ..model import Topology
from ..naming import DEFAULT_STATE_ROOT as DEFAULT_STATE_DIR
from ..render.qemu import HostOffers, direct_fd, guest_args, machine_args
from ..render.qemu_tuning import guest_wide
from . import overlay
from ..valueclass import field, mutable, replace


@mutable
class Launch:
    argv: list[str]
    notes: list[str] = field(default_factory=list)


def hook_paths() -> tuple[str, str]:
    """kvmnet-ifup/-ifdown next to the running interpreter (the venv), else on PATH."""
    here = os.path.dirname(os.path.abspath(os.sys.argv[0]))
    paths = []
    for name in ("kvmnet-ifup", "kvmnet-ifdown"):
        local = os.path.join(here, name)
        paths.append(local if os.access(local, os.X_OK) else shutil.which(name) or name)
    return paths[0], paths[1]


def offers(accel: str, state_root: str | None = None, topology: str | None = None) -> HostOffers:
    """What this host's QEMU can use; `state_root` and `topology` place the sockets of the
    topology's passts (render/passt.py) and vde_switches (its state dir)."""
    ifup, ifdown = hook_paths()
    root = state_root or DEFAULT_STATE_DIR
    return HostOffers(vhost_net=accel == "kvm" and qemu.vhost_net(), ifup=ifup, ifdown=ifdown, state_root=root,
                      state_dir=os.path.join(root, topology) if topology else None)


def bridge_offers(base: HostOffers) -> HostOffers:
    return replace(base, bridge_helper=qemu.bridge_helper())


def check_backends(topo: Topology, guest_name: str, exe: str) -> list[str]:
    """Refuse what this QEMU cannot do; warn about what the host lacks."""
    notes = []
    backends = qemu.netdev_backends(exe)
    for nic in topo.guest(guest_name).nics:
        net = topo.network(nic.network)
        kind = "tap" if net.bridged or net.mode == "direct" else "stream" if net.mode == "passt" else net.mode
        if kind not in backends:
            hint = " (QEMU built without slirp)" if kind == "user" else ""
            raise InputError(f"guests.{guest_name}: network {net.name} needs `-netdev {kind}`, which {exe} does not offer{hint}")
        if net.mode == "user" and net.user.smb and not shutil.which("smbd"):
            notes.append(f"warning: networks.{net.name}.smb is set but smbd is not installed; QEMU will fail to share {net.user.smb}")
    check_tuning(topo, guest_name)
    return notes


def check_tuning(topo: Topology, guest_name: str) -> None:
    """What the file asks of this host's QEMU: vhost-net, a directory for each capture."""
    for i, nic in enumerate(topo.guest(guest_name).nics):
        where = f"guests.{guest_name}.nics[{i}]"
        if nic.tuning.vhost == "on" and not qemu.vhost_net():
            raise InputError(f"{where}.vhost: on, but this host has no /dev/vhost-net (modprobe vhost_net), "
                             "and QEMU would fail; use vhost = \"auto\"")
        capture = nic.tuning.capture
        if capture and not os.path.isdir(os.path.dirname(os.path.abspath(capture))):
            raise InputError(f"{where}.capture: directory {os.path.dirname(os.path.abspath(capture))} does not exist")


def build(topo: Topology, guest_name: str, extra: list[str], syntax: str = "netdev", hooks: bool = False,
          accel: str | None = None, state_root: str | None = None) -> Launch:
    if guest_name not in {g.name for g in topo.guests}:
        raise InputError(f"{topo.path}: no guest {guest_name!r} (guests: {', '.join(g.name for g in topo.guests) or 'none'})")
    overlay.refuse_elsewhere(topo, guest_name)  # a guest of another host (a multi-host file) has no tap here
    exe = qemu.binary()
    if exe is None:
        raise InputError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86), or set KVMNET_QEMU")
    notes = check_backends(topo, guest_name, exe)
    if accel is None:
        works, why = qemu.kvm_works(exe)
        accel = "kvm" if works else "tcg"
        notes.append("accelerator: KVM" if works else f"accelerator: TCG (software emulation, slow): {why}")
    guest = topo.guest(guest_name)
    argv = [exe, *machine_args(guest, accel)]
    for fragment in guest_args(topo, guest, syntax, hooks, offers(accel, state_root, topo.name)):
        argv += fragment
    argv += guest_wide(guest)
    return Launch(argv + list(extra), notes)


def direct_devices(topo: Topology, guest_name: str, host=None) -> list[tuple[int, str]]:
    """(descriptor QEMU expects, /dev/tapN to open on it) for the guest's macvtaps, which must
    exist (applied): N is the macvtap's ifindex in this network namespace."""
    from ..host import system
    from ..render.macvtap import device
    from .plan.macvtap import macvtap_name
    host = host or system.default()
    out = []
    for i, nic in enumerate(topo.guest(guest_name).nics):
        if topo.network(nic.network).mode == "direct":
            name = macvtap_name(topo.name, guest_name, i)
            index = host.ifindex(name)
            if index is None:
                raise HostError(f"macvtap {name} of guests.{guest_name}.nics[{i}] does not exist: run kvmnet apply first")
            out.append((direct_fd(i), device(index)))
    return out
