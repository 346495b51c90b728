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
    """kn-<guest>-<i> when it fits, else kn<hash>-<i>; both at most 15 bytes."""
    short = f"kn-{guest}-{index}"
    if len(short.encode()) <= IFNAMSIZ and ifname_problem(short) is None:
        return short
    return f"kn{_digest(topology, guest).hex()[:8]}-{index}"


def guest_mac(topology: str, guest: str, index: int, salt: int = 0) -> str:
    """52:54:00:xx:xx:xx (QEMU's locally administered prefix) from a hash of the NIC's identity;
    `salt` > 0 only when that collides with another NIC's MAC."""
    tail = _digest(topology, guest, str(index), *([str(salt)] if salt else []))[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def bridge_mac(topology: str, network: str) -> str:
    """A fixed bridge MAC, so the bridge does not change address as ports come and go."""
    tail = _digest(topology, "bridge", network)[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def link_group(topology: str) -> int:
    """The netlink link group of a topology's taps, so destroy can delete them in one request
    (~0.5 ms per tap instead of ~20 ms one by one). kvmnet checks the group holds nothing but
    its own taps before it deletes by group."""
    return 0x4B4E0000 | int.from_bytes(_digest(topology, "group")[:2], "big")


def tap_host_mac(guest_mac: str) -> str:
    """libvirt's convention: the host side of a tap is the guest MAC with a high first byte,
    so the bridge never adopts it and it is easy to pair with the guest by eye."""
    return "fe" + guest_mac[2:]


def topology_name_from_path(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem.replace("-", "_").replace(".", "_")


def state_dir_for(topology: str, root: str) -> str:
    return os.path.join(root, topology)


def nft_table(topology: str) -> str:
    return f"kvmnet_{topology}".replace("-", "_")


def iptables_prefix(topology: str) -> str:
    """KN-<topology>, or KN-<hash> when chains KN-<topology>-POST would pass 28 characters
    (render/iptables.py names the chains <prefix>-{PRE,OUT,POST,FWD,INP,GRD})."""
    prefix = f"KN-{topology}"
    return prefix if len(prefix) <= 23 else f"KN-{_digest(topology).hex()[:10]}"



def vde_paths(state_dir: str, network: str) -> dict[str, str]:
    """A vde_switch's control directory (QEMU's -netdev vde,sock=), pid file, management socket."""
    base = os.path.join(state_dir, f"vde-{network}")
    return {"ctl": base + ".ctl", "pid": base + ".pid", "mgmt": base + ".mgmt"}


def vde_tap(topology: str, network: str) -> str:
    """The tap a vde_switch joins a bridge with: kv<hash>, 10 bytes."""
    return f"kv{_digest(topology, network).hex()[:8]}"


def dnsmasq_paths(state_dir: str, network: str) -> dict[str, str]:
    base = os.path.join(state_dir, f"dnsmasq-{network}")
    return {"conf": base + ".conf", "pid": base + ".pid", "leases": base + ".leases"}
