"""Keys for how a guest is attached beyond a plain tap: `bandwidth` limits on a NIC or a network,
and `direct` networks (a macvtap per guest NIC on an uplink).

Rates and sizes are written in tc's units, with tc's meaning: rates in bits per second with
decimal prefixes (10mbit = 10,000,000 bit/s; `bps` suffixes are bytes per second), sizes in
bytes with binary prefixes (64kb = 65536 bytes)."""

from __future__ import annotations

import re

from ipaddress import IPv4Interface

from ..model import MACVTAP_MODES, Bandwidth, Guest, Network, VIRTUAL_MODES
from .tomlread import Reader

DIRECT_KEYS = ("mode", "uplink", "macvtap_mode", "host_macvlan", "host_address")

# (patterns, compiled at first use through re's cache: a topology without bandwidth never needs them)
_RATE = r"(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)"
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9,
               "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}
_SIZE = r"(\d+)\s*(b|k|kb|m|mb)?"
_SIZE_UNITS = {"b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}

MIN_RATE, MAX_RATE = 8000, 100 * 10**9  # 8kbit .. 100gbit
MIN_BURST, MAX_BURST = 2048, 256 * 1024**2  # a full-size frame must fit; tbf keeps the burst in 32 bits of ticks
KEYS = ("inbound", "outbound", "burst")


def rate(text: str) -> int | None:
    """tc rate text -> bits per second, or None when it is not one."""
    m = re.fullmatch(_RATE, text.strip(), re.ASCII | re.IGNORECASE)
    return None if m is None else int(float(m[1]) * _RATE_UNITS[m[2].lower()])


def size(text: str) -> int | None:
    """tc size text -> bytes, or None."""
    m = re.fullmatch(_SIZE, text.strip(), re.ASCII | re.IGNORECASE)
    return None if m is None else int(m[1]) * _SIZE_UNITS[(m[2] or "b").lower()]


def bandwidth(r: Reader, raw: dict, path: tuple) -> Bandwidth | None:
    """The `bandwidth` key of a network or a NIC table, when it has one."""
    if "bandwidth" not in raw:
        return None
    path = path + ("bandwidth",)
    table = r.table(raw["bandwidth"], path, KEYS)
    if not table:
        if isinstance(raw["bandwidth"], dict):
            r.error(path, "is empty: give inbound, outbound or both (like inbound = \"10mbit\")")
        return None
    values = {}
    for key in ("inbound", "outbound"):
        text = r.get(table, key, path, str, None)
        if text is None:
            continue
        bits = rate(text)
        if bits is None:
            r.error(path + (key,), f"{text!r} is not a rate (like 10mbit, 512kbit, 1gbit)")
        elif not MIN_RATE <= bits <= MAX_RATE:
            r.error(path + (key,), f"{text} is outside 8kbit-100gbit")
        else:
            values[key] = bits
    text = r.get(table, "burst", path, str, None)
    if text is not None:
        values["burst"] = _burst(r, text, path + ("burst",))
    if "inbound" not in table and "outbound" not in table and "burst" in table:
        r.error(path + ("burst",), "a burst needs a rate: give inbound, outbound or both")
    return Bandwidth(**values) if values.get("inbound") or values.get("outbound") else None


def _burst(r: Reader, text: str, path: tuple) -> int | None:
    nbytes = size(text)
    if nbytes is None:
        r.error(path, f"{text!r} is not a size (like 64kb, 1mb, 32000)")
    elif not MIN_BURST <= nbytes <= MAX_BURST:
        r.error(path, f"{text} is outside 2kb-256mb (a full-size frame must fit)")
    else:
        return nbytes
    return None


def check_bandwidth(r: Reader, networks: list[Network], guests: list[Guest]) -> None:
    """Limits sit on a link kvmnet owns: a NIC's tap, a network's own bridge."""
    by_name = {n.name: n for n in networks}
    for net in networks:
        if net.bandwidth is not None and net.mode not in VIRTUAL_MODES:
            r.error(("networks", net.name, "bandwidth"),
                    f"a network-wide limit needs a network kvmnet routes for ({', '.join(VIRTUAL_MODES)}), not {net.mode}; "
                    "limit each guest NIC instead")
    for guest in guests:
        for i, nic in enumerate(guest.nics):
            net = by_name.get(nic.network)
            if nic.bandwidth is not None and net is not None and not net.bridged:
                r.error(("guests", guest.name, "nics", i, "bandwidth"),
                        f"network {net.name} is mode {net.mode}: limits need a tap kvmnet owns")


def direct_net(r: Reader, name: str, raw: dict, path: tuple) -> Network:
    """mode = "direct": guests sit on the uplink's LAN through macvtaps (libvirt's <forward
    mode='bridge|vepa|private|passthrough'> on a device)."""
    uplink = r.ifname(raw, "uplink", path)
    mode = r.get(raw, "macvtap_mode", path, str, "bridge")
    if mode is not None and mode not in MACVTAP_MODES:
        r.error(path + ("macvtap_mode",), f"unknown macvtap mode {mode!r} (one of {', '.join(MACVTAP_MODES)})")
    host = r.ifname(raw, "host_macvlan", path, None)
    if host is not None and mode != "bridge":
        r.error(path + ("host_macvlan",), f"the host reaches its guests through a macvlan only in macvtap_mode bridge, not {mode}")
    address = r.get(raw, "host_address", path, str, None)
    if address is not None:
        address = _host_address(r, address, path + ("host_address",), host)
    if host is not None and host == uplink:
        r.error(path + ("host_macvlan",), f"{host} is the uplink; name a new interface for the host's macvlan")
    return Network(name, "direct", uplink=uplink, macvtap_mode=mode, host_macvlan=host, host_address=address)


def _host_address(r: Reader, text: str, path: tuple, host: str | None) -> str | None:
    if host is None:
        r.error(path, "needs host_macvlan (the interface that carries it)")
        return None
    try:
        iface = IPv4Interface(text)
    except ValueError:
        r.error(path, f"{text!r} is not an IPv4 address with its prefix (like 192.168.1.250/24)")
        return None
    if "/" not in text:
        r.error(path, f"{text!r} has no prefix length (like {text}/24)")
        return None
    return str(iface)
