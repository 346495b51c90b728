"""[guests.NAME] tables -> model.Guest. A NIC whose file gives no MAC gets mac=None here;
derive.py chooses one once every NIC is known (it must not collide with any of them)."""

from __future__ import annotations

import re

from .. import naming
from ..model import Guest, Nic
from .tomlread import Reader

MAX_NICS = 64  # per guest: more than a PCI bus holds, and derived tap names stay within 15 bytes
NIC_MODELS = ("virtio-net-pci", "virtio-net", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet",
              "vmxnet3", "i82559er", "usb-net")
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", re.ASCII)
_BOUNDS = (("memory", 16, 1 << 20), ("cpus", 1, 1024), ("queues", 1, 64))


def guest(r: Reader, name: str, raw, path: tuple) -> Guest | None:
    if not naming.OBJECT_NAME_RE.fullmatch(name):
        r.error(path, f"guest name {name!r} must be 1-32 letters, digits, '_' or '-'")
        return None
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


def _nic(r: Reader, raw, path: tuple) -> Nic | None:
    raw = r.table(raw, path, ("network", "mac", "ip", "model", "tap"))
    network = r.get(raw, "network", path, str)
    mac = r.get(raw, "mac", path, str, None)
    if mac is not None:
        mac = canonical_mac(r, mac, path + ("mac",))
    ip = r.ipv4(raw, "ip", path, None)
    model = r.get(raw, "model", path, str, "virtio-net-pci")
    if model is not None and model not in NIC_MODELS:
        r.error(path + ("model",), f"unknown NIC model {model!r} (one of {', '.join(NIC_MODELS)})")
    tap = r.ifname(raw, "tap", path, None)
    if network is None:
        return None
    return Nic(network, mac, ip, model or "virtio-net-pci", tap)


def canonical_mac(r: Reader, text: str, path: tuple) -> str | None:
    mac = text.strip().lower().replace("-", ":")
    if not _MAC_RE.fullmatch(mac):
        r.error(path, f"{text!r} is not a MAC address (like 52:54:00:12:34:56)")
        return None
    if int(mac[:2], 16) & 1:
        r.error(path, f"{text} is a multicast MAC; a NIC needs a unicast one")
        return None
    if mac == "00:00:00:00:00:00":
        r.error(path, "00:00:00:00:00:00 is not a usable MAC")
        return None
    return mac
