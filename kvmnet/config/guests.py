"""[guests.NAME] tables -> model.Guest. A NIC whose file gives no MAC gets mac=None here;
derive.py chooses one once every NIC is known (it must not collide with any of them)."""

from __future__ import annotations

from ipaddress import IPv4Address

from .. import naming
from ..model import Guest, Nic, NicTuning
from .ipv6 import nic_ip6
from .attach import bandwidth
from . import seed_opts
from .tomlread import Reader, dotted_quad
from .values import maker

MAX_NICS = 64  # per guest: more than a PCI bus holds, and derived tap names stay within 15 bytes
NIC_MODELS = ("virtio-net-pci", "virtio-net", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet",
              "vmxnet3", "i82559er", "usb-net")
_BOUNDS = (("memory", 16, 1 << 20), ("cpus", 1, 1024), ("queues", 1, 64))
_HEX = "0123456789abcdefABCDEF"  # (string.hexdigits, without importing string and its Template regex)


def guest(r: Reader, name: str, raw, path: tuple) -> Guest | None:
    if not naming.OBJECT_NAME_RE.fullmatch(name):
        r.error(path, f"guest name {name!r} must be 1-32 letters, digits, '_' or '-'")
        return None
    quick = _plain_guest(name, raw)
    if quick is not None:
        return quick
    raw = r.table(raw, path, ("nics", "memory", "cpus", "kernel", "initrd", "append", "disk", "qemu_args", "queues"))
    extra = {}
    for key, lo, hi in _BOUNDS:
        value = r.get(raw, key, path, int, None)
        if value is not None and not lo <= value <= hi:
            r.error(path + (key,), f"{value} is outside {lo}-{hi}")
        elif value is not None:
            extra[key] = value
    for key in ("kernel", "initrd", "append", "disk"):
        value = r.get(raw, key, path, str, None)
        if value is not None:
            extra[key] = value
    args = r.get(raw, "qemu_args", path, list, [])
    if args and not all(isinstance(a, str) for a in args):
        r.error(path + ("qemu_args",), "must be an array of strings")
    elif args:
        extra["qemu_args"] = tuple(args)
    nics_raw = r.get(raw, "nics", path, list, [])
    if nics_raw and len(nics_raw) > MAX_NICS:
        r.error(path + ("nics",), f"{len(nics_raw)} NICs; a guest has at most {MAX_NICS}")
        nics_raw = []
    nics = [n for i, nic in enumerate(nics_raw or []) if (n := _nic(r, nic, path + ("nics", i)))]
    return Guest(name, tuple(nics), **extra)


_PLAIN_NIC_KEYS = frozenset({"network", "ip"})


def _plain_guest(name: str, raw) -> Guest | None:
    """The Guest the full path makes of the common shape (NICs that give a network and maybe a
    plain IPv4 address, nothing else), without its checks' overhead (1000 guests: ~7 ms less);
    None: anything else, for the full path and its messages. derive.py picks MACs and taps for
    both alike."""
    if type(raw) is not dict or not raw.keys() <= {"nics"}:
        return None
    nics_raw = raw.get("nics", [])
    if type(nics_raw) is not list or len(nics_raw) > MAX_NICS:
        return None
    nics = []
    for nic in nics_raw:
        if type(nic) is not dict or not _PLAIN_NIC_KEYS.issuperset(nic):
            return None
        network, ip = nic.get("network"), nic.get("ip")
        if type(network) is not str or not naming.OBJECT_NAME_RE.fullmatch(network):
            return None  # (no network has such a name: the full path says so)
        if ip is not None:
            ip = dotted_quad(ip)
            if ip is None:
                return None
            ip = IPv4Address(ip)
        nics.append(_nic_of((network, None, ip, "virtio-net-pci", None, None, None, _NO_TUNING)))
    return Guest(name, tuple(nics))


_nic_of = maker(Nic)  # Nic(*values) in half the time (values.py)
_NO_TUNING = NicTuning()  # (what seed_opts.nic_tuning makes of a NIC without its keys)


def _nic(r: Reader, raw, path: tuple) -> Nic | None:
    raw = r.table(raw, path, ("network", "mac", "ip", "ip6", "model", "tap", "bandwidth") + seed_opts.NIC_KEYS)
    network = r.get(raw, "network", path, str)
    mac = r.get(raw, "mac", path, str, None)
    if mac is not None:
        mac = mac_address(r, mac, path + ("mac",))
    ip = r.ipv4(raw, "ip", path, None)
    model = r.get(raw, "model", path, str, "virtio-net-pci")
    if model is not None and model not in NIC_MODELS:
        r.error(path + ("model",), f"unknown NIC model {model!r} (one of {', '.join(NIC_MODELS)})")
    tap = r.ifname(raw, "tap", path, None)
    if network is None:
        return None
    return Nic(network, mac, ip, model or "virtio-net-pci", tap, bandwidth=bandwidth(r, raw, path),
               ip6=nic_ip6(r, raw, path), tuning=seed_opts.nic_tuning(r, raw, path, model))


def mac_address(r: Reader, text: str, path: tuple) -> str | None:
    """A NIC's or a bridge's MAC, in any common spelling (52:54:00:12:34:56, 52-54-00-12-34-56, 5254.0012.3456, 525400123456,
    upper case) -> 52:54:00:12:34:56: the rest of kvmnet compares MACs as strings."""
    mac = _eui48(text.strip())
    if mac is None:
        r.error(path, f"{text!r} is not a MAC address (like 52:54:00:12:34:56, 52-54-00-12-34-56 or 5254.0012.3456)")
        return None
    if mac == "ff:ff:ff:ff:ff:ff":
        r.error(path, f"{text} is the broadcast MAC; a NIC needs a unicast one")
        return None
    if int(mac[:2], 16) & 1:  # the I/G bit: a group address
        r.error(path, f"{text} is a multicast MAC; a NIC needs a unicast one")
        return None
    if mac == "00:00:00:00:00:00":
        r.error(path, f"{text} is not a usable MAC (all zeros)")
        return None
    return mac


def _eui48(text: str) -> str | None:
    """The MAC as 52:54:00:12:34:56, or None. netaddr's parse, without its zero-padding of short
    groups (5254.0012.345 is a typo, not 52:54:00:12:03:45); the spelling kvmnet itself writes is
    read here, so a cold apply of such a file never imports netaddr (~25 ms of start-up)."""
    if sum(c in _HEX for c in text) != 12:
        return None
    groups = text.split(":")
    if len(groups) == 6 and all(len(g) == 2 for g in groups):  # 12 hex digits in 12 characters
        return text.lower()
    from netaddr import EUI, AddrFormatError, mac_unix_expanded

    try:
        return str(EUI(text, version=48, dialect=mac_unix_expanded))
    except (AddrFormatError, ValueError):
        return None
