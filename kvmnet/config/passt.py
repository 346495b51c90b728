"""mode = "passt" networks: each guest NIC gets its own passt (user-mode networking in a process
of its own, without QEMU's slirp). These keys are what that passt offers the guest; port forwards
are the network's [[forwards]], read by forwards.py like a nat network's.

passt copies its defaults from the host's default route (the guest gets the host's address, the
gateway, /etc/resolv.conf's servers); every key here only overrides one of them."""

from __future__ import annotations

import re
from ipaddress import IPv4Interface, IPv6Address, ip_address

from ..model import Network, PasstNet
from .tomlread import Reader

KEYS = ("mode", "forwards", "ipv4", "ipv6", "address", "gateway", "address6", "gateway6", "dns",
        "search", "dns_forward", "map_gateway", "mtu")
MAX_MTU = 65520  # passt's own maximum (and default)
# (compiled at first use through re's cache: only passt networks with a DNS search list need it)
_DOMAIN = r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.?"


def passt_net(r: Reader, name: str, raw: dict, path: tuple) -> Network:
    ipv4 = bool(r.get(raw, "ipv4", path, bool, True))
    ipv6 = bool(r.get(raw, "ipv6", path, bool, True))
    if not ipv4 and not ipv6:
        r.error(path + ("ipv6",), "ipv4 and ipv6 are both off: the guest would have no network")
    fields = {"address": _address(r, raw, path), "gateway": r.ipv4(raw, "gateway", path, None),
              "address6": _ipv6(r, raw, "address6", path), "gateway6": _ipv6(r, raw, "gateway6", path),
              "dns": _dns(r, raw, path), "search": _search(r, raw, path),
              "dns_forward": r.ipv4(raw, "dns_forward", path, None),
              "map_gateway": bool(r.get(raw, "map_gateway", path, bool, True)), "mtu": _mtu(r, raw, path)}
    for key in ("address", "gateway", "dns_forward"):
        if fields[key] is not None and not ipv4:
            r.error(path + (key,), "is IPv4, but ipv4 is off")
    for key in ("address6", "gateway6"):
        if fields[key] is not None and not ipv6:
            r.error(path + (key,), "is IPv6, but ipv6 is off")
    if ipv6 and fields["mtu"] is not None and fields["mtu"] < 1280:
        r.error(path + ("mtu",), f"{fields['mtu']} is below IPv6's minimum 1280; set ipv6 = false for a smaller MTU")
    gateway, address = fields["gateway"], fields["address"]
    if gateway is not None and address is not None and gateway not in address.network:
        r.error(path + ("gateway",), f"{gateway} is outside the guest's subnet {address.network}")
    if gateway is not None and address is not None and gateway == address.ip:
        r.error(path + ("gateway",), f"{gateway} is the guest's own address")
    return Network(name, "passt", passt=PasstNet(ipv4=ipv4, ipv6=ipv6, **fields))


def _address(r: Reader, raw: dict, path: tuple) -> IPv4Interface | None:
    """The guest's IPv4 address with its prefix (passt's -a and -n)."""
    text = r.get(raw, "address", path, str, None)
    if text is None:
        return None
    try:
        iface = IPv4Interface(text)
    except ValueError:
        r.error(path + ("address",), f"{text!r} is not an IPv4 address with its prefix (like 10.0.2.15/24)")
        return None
    if "/" not in text:
        r.error(path + ("address",), f"{text!r} has no prefix length (like {text}/24)")
        return None
    if not 8 <= iface.network.prefixlen <= 30 or iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        r.error(path + ("address",), f"{text} is not a host address in a /8-/30 subnet")
        return None
    return iface


def _ipv6(r: Reader, raw: dict, key: str, path: tuple) -> IPv6Address | None:
    text = r.get(raw, key, path, str, None)
    if text is None:
        return None
    try:
        addr = ip_address(text)
    except ValueError:
        addr = None
    if not isinstance(addr, IPv6Address):
        r.error(path + (key,), f"{text!r} is not an IPv6 address (without a prefix)")
        return None
    return addr


def _dns(r: Reader, raw: dict, path: tuple) -> tuple | None:
    """DNS servers offered to the guest; [] offers none (passt's default: the host's)."""
    values = r.get(raw, "dns", path, list, None)
    if values is None:
        return None
    out = []
    for i, text in enumerate(values):
        try:
            out.append(ip_address(text if isinstance(text, str) else ""))
        except ValueError:
            r.error(path + ("dns", i), f"{text!r} is not an IPv4 or IPv6 address")
    return tuple(out)


def _search(r: Reader, raw: dict, path: tuple) -> tuple | None:
    values = r.get(raw, "search", path, list, None)
    if values is None:
        return None
    for i, text in enumerate(values):
        if not isinstance(text, str) or len(text) > 253 or not re.fullmatch(_DOMAIN, text, re.ASCII):
            r.error(path + ("search", i), f"{text!r} is not a DNS domain name")
    return tuple(v for v in values if isinstance(v, str))


def _mtu(r: Reader, raw: dict, path: tuple) -> int | None:
    mtu = r.get(raw, "mtu", path, int, None)
    if mtu is not None and not 68 <= mtu <= MAX_MTU:
        r.error(path + ("mtu",), f"{mtu} is outside 68-{MAX_MTU}")
        return None
    return mtu
