"""The seed's per-NIC QEMU options (chapter 5.2 and 5.5) -> model.NicTuning.

Each key maps to one QEMU option: `sndbuf` (-netdev tap,sndbuf=), `vnet_hdr` (tap,vnet_hdr=),
`vhost` (tap,vhost=), `vectors` (-device virtio-net-pci,vectors= / -net nic,vectors=) and
`capture` (-object filter-dump, the successor of `-net dump`)."""

from __future__ import annotations

from ..model import Network, Nic, NicTuning
from .tomlread import Reader

NIC_KEYS = ("sndbuf", "vnet_hdr", "vhost", "vectors", "capture")
VHOST = ("auto", "on", "off")
_MAX_SNDBUF = (1 << 31) - 1  # QEMU keeps it in an int
_MAX_VECTORS = 2048  # the PCI MSI-X table limit
_TAP_ONLY = ("sndbuf", "vnet_hdr", "vhost")


def nic_tuning(r: Reader, raw: dict, path: tuple, model: str | None) -> NicTuning:
    sndbuf = _bounded(r, raw, "sndbuf", path, 0, _MAX_SNDBUF)
    vectors = _bounded(r, raw, "vectors", path, 0, _MAX_VECTORS)
    vnet_hdr = r.get(raw, "vnet_hdr", path, bool, None)
    vhost = r.get(raw, "vhost", path, str, "auto") or "auto"
    if vhost not in VHOST:
        r.error(path + ("vhost",), f"{vhost!r} is not one of {', '.join(VHOST)}")
        vhost = "auto"
    virtio = (model or "virtio-net-pci").startswith("virtio")
    if vhost == "on" and not virtio:
        r.error(path + ("vhost",), f"vhost-net serves virtio NICs only (model is {model})")
    if vectors is not None and not virtio:
        r.error(path + ("vectors",), f"MSI-X vectors are a virtio-net-pci property (model is {model})")
    capture = r.get(raw, "capture", path, str, None)
    if capture is not None and not capture.strip():
        r.error(path + ("capture",), "must be a file name (the pcap QEMU writes)")
        capture = None
    if capture and vhost == "on":
        r.error(path + ("vhost",), "a captured NIC needs vhost off: with vhost-net the kernel moves its frames "
                                   "and QEMU's filter-dump never sees them")
    if capture and vnet_hdr:
        r.error(path + ("vnet_hdr",), "a captured NIC needs vnet_hdr = false: QEMU would write a virtio-net "
                                      "header before every frame, which no pcap reader understands")
    return NicTuning(sndbuf, vnet_hdr, vhost, vectors, capture)


def _bounded(r: Reader, raw: dict, key: str, path: tuple, lo: int, hi: int) -> int | None:
    value = r.get(raw, key, path, int, None)
    if value is not None and not lo <= value <= hi:
        r.error(path + (key,), f"{value} is outside {lo}-{hi}")
        return None
    return value


def check_tap_only(r: Reader, nic: Nic, net: Network, path: tuple) -> None:
    """sndbuf, vnet_hdr and vhost are options of QEMU's tap backend alone."""
    if net.bridged:
        return
    t = nic.tuning
    given = {"sndbuf": t.sndbuf is not None, "vnet_hdr": t.vnet_hdr is not None, "vhost": t.vhost != "auto"}
    for key in _TAP_ONLY:
        if given[key]:
            r.error(path + (key,), f"{key} is an option of tap NICs; networks.{net.name} is {net.mode} "
                                   f"(QEMU's -netdev {net.mode} has no {key})")


def check_vde_joins(r: Reader, networks: list[Network]) -> None:
    """A vde network's `bridge` is the bridge of a kvmnet network of the same file (its DHCP,
    NAT and firewall then serve the switch's guests too)."""
    bridges = {n.bridge: n for n in networks if n.bridged and n.bridge}
    for net in networks:
        if net.mode == "vde" and net.vde_join is not None and net.vde_join not in bridges:
            known = ", ".join(sorted(bridges)) or "none"
            r.error(("networks", net.name, "bridge"),
                    f"{net.vde_join} is not the bridge of a network in this file (bridges: {known})")
