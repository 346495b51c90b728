"""Every name kvmnet derives: taps, MACs, firewall objects, state paths.

Derived names are deterministic so that re-applying a file finds what an earlier run made,
and they carry a kvmnet marker so that nothing of anyone else's is ever mistaken for ours.
"""

from __future__ import annotations

import hashlib
import os
import re

from .ifname import IFNAMSIZ, problem as ifname_problem  # noqa: F401  (re-exported)

OBJECT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,31}", re.ASCII)  # networks, guests: use fullmatch


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("/".join(parts).encode()).digest()


def tap_name(topology: str, guest: str, index: int) -> str:
    """The first that fits in 15 bytes: kn-<topology>-<guest>-<i> (kn-nat-web-0); kn<t>-<guest>-<i>
    with t 4 hex digits of the topology's hash (kn3f2a-web-0); kn<h>-<i> with h 8 hex digits of
    the topology's and the guest's. Two topologies' guests `web` never share the first form:
    a topology name has no '-', so the name reads back to one topology, guest and index; the
    forms differ at the third byte ('-' or a hex digit) and in their number of dashes."""
    name = f"kn-{topology}-{guest}-{index}"
    if _fits(name):  # (the common case: no hash of the topology made for each of its 1000 NICs)
        return name
    name = f"kn{_digest(topology).hex()[:4]}-{guest}-{index}"
    return name if _fits(name) else f"kn{_digest(topology, guest).hex()[:8]}-{index}"


def _fits(name: str) -> bool:
    return len(name.encode()) <= IFNAMSIZ and ifname_problem(name) is None


def guest_mac(topology: str, guest: str, index: int, salt: int = 0) -> str:
    """52:54:00:xx:xx:xx (QEMU's locally administered prefix) from a hash of the NIC's identity;
    `salt` > 0 only when that collides with another NIC's MAC."""
    tail = _digest(topology, guest, str(index), *([str(salt)] if salt else []))[:3]
    return "52:54:00:" + tail.hex(":")


def bridge_mac(topology: str, network: str) -> str:
    """A fixed bridge MAC, so the bridge does not change address as ports come and go."""
    tail = _digest(topology, "bridge", network)[:3]
    return "52:54:00:" + tail.hex(":")


def link_group(topology: str) -> int:
    """The netlink link group of a topology's taps, so destroy can delete them in one request
    (~0.5 ms per tap instead of ~20 ms one by one). kvmnet checks the group holds nothing but
    its own taps before it deletes by group."""
    return 0x4B4E0000 | int.from_bytes(_digest(topology, "group")[:2], "big")


def bridge_group(topology: str) -> int:
    """The link group of a topology's bridges (beside its taps' group, never equal to any
    topology's tap group): destroy deletes them in one request, which the kernel does in about
    half the time of one request per bridge (checked like the taps' group before use)."""
    return link_group(topology) | 0x10000


def removal_group(topology: str) -> int:
    """The link group an apply moves the taps it removes into, to delete them in one request
    (their own group holds the taps that stay). Beside the topology's tap and bridge groups and
    never equal to any topology's; checked like them before use."""
    return link_group(topology) | 0x100000


def tap_host_mac(guest_mac: str) -> str:
    """libvirt's convention: the host side of a tap is the guest MAC with a high first byte,
    so the bridge never adopts it and it is easy to pair with the guest by eye."""
    return "fe" + guest_mac[2:]


def topology_name_from_path(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem.replace("-", "_").replace(".", "_")


def state_dir_for(topology: str, root: str) -> str:
    return os.path.join(root, topology)


def passt_dir(topology: str, guest: str, index: int, root: str) -> str:
    """The directory of a guest NIC's passt (its socket and pid file), in the topology's state
    dir; short (tap_name), as the socket's path must fit in 107 bytes."""
    return os.path.join(state_dir_for(topology, root), f"passt-{tap_name(topology, guest, index)}")


def nft_table(topology: str) -> str:
    return f"kvmnet_{topology}".replace("-", "_")


def iptables_prefix(topology: str) -> str:
    """KN-<topology>, or KN-<hash> when chains KN-<topology>-POST would pass 28 characters
    (render/iptables.py names the chains <prefix>-{PRE,OUT,POST,FWD,INP,GRD})."""
    prefix = f"KN-{topology}"
    return prefix if len(prefix) <= 23 else f"KN-{_digest(topology).hex()[:10]}"



DEFAULT_STATE_ROOT, DEFAULT_LIB_ROOT = "/run/kvmnet", "/var/lib/kvmnet"


def lease_dir(state_dir: str) -> str:
    """Where a topology's DHCP leases live. They must survive a reboot (guests keep their
    addresses, `kvmnet leases` still knows them), so the default state dir under /run maps to
    /var/lib/kvmnet (as libvirt keeps its under /var/lib/libvirt/dnsmasq); $KVMNET_LIB_DIR
    replaces that root; an explicit --state-dir elsewhere keeps them beside its state."""
    root, topology = os.path.split(os.path.normpath(state_dir))
    if os.environ.get("KVMNET_LIB_DIR"):
        return os.path.join(os.environ["KVMNET_LIB_DIR"], topology)
    if root == DEFAULT_STATE_ROOT or root.startswith(DEFAULT_STATE_ROOT + "/netns/"):
        return os.path.join(DEFAULT_LIB_ROOT + root[len(DEFAULT_STATE_ROOT):], topology)
    return state_dir


def vde_paths(state_dir: str, network: str) -> dict[str, str]:
    """A vde_switch's control directory (QEMU's -netdev vde,sock=), pid file, management socket."""
    base = os.path.join(state_dir, f"vde-{network}")
    return {"ctl": base + ".ctl", "pid": base + ".pid", "mgmt": base + ".mgmt"}


def vde_tap(topology: str, network: str) -> str:
    """The tap a vde_switch joins a bridge with: kv<hash>, 10 bytes."""
    return f"kv{_digest(topology, network).hex()[:8]}"


def dnsmasq_paths(state_dir: str, network: str) -> dict[str, str]:
    base = os.path.join(state_dir, f"dnsmasq-{network}")
    leases = os.path.join(lease_dir(state_dir), f"dnsmasq-{network}.leases")
    return {"conf": base + ".conf", "pid": base + ".pid", "leases": leases}
