"""[[networks.NAME.forwards]] -> model.Forward. Read after the guests, whom they name; host port
ranges must not overlap across all networks. nat networks DNAT them to the guest's address;
passt networks (same syntax) hand them to the guest's own passt, so there they name a guest."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

from ..errors import InputError, Problem
from ..model import Forward, Guest, Network
from .tomlpos import line_of
from .tomlread import Reader, check_host_address

FORWARDING_MODES = ("nat", "passt")
MAX_FORWARDS = 20000  # in all; each is one map element, but a file this big is a mistake


def with_forwards(r: Reader, networks: list[Network], raw_networks: dict, guests: list[Guest]) -> list[Network]:
    """The networks with their forwards; InputError at once past MAX_FORWARDS."""
    guests_by_name = {g.name: g for g in guests}
    total, out = 0, []
    ports: list[tuple[str, int, int, str, tuple]] = []  # proto, low, high, where, key path
    for net in networks:
        raw = raw_networks[net.name]
        if net.mode not in FORWARDING_MODES or "forwards" not in raw:
            out.append(net)
            continue
        path = ("networks", net.name, "forwards")
        total += len(raw["forwards"]) if isinstance(raw["forwards"], list) else 0
        if total > MAX_FORWARDS:
            raise InputError([Problem(r.file, line_of(r.lines, path), f"networks.{net.name}.forwards", f"too many port forwards (at most {MAX_FORWARDS} in all)")])
        fwds = _forwards(r, net, raw["forwards"], path, guests_by_name)
        ports += [(f.proto, *f.host_ports, f"networks.{net.name}.forwards[{f.index}]",
                   path + (f.index, "host_port")) for f in fwds]
        out.append(replace(net, forwards=fwds))
    _check_port_overlaps(r, ports)
    return out


def _forwards(r: Reader, net: Network, raw_list, path: tuple, guests_by_name: dict) -> tuple:
    out = []
    for i, raw in enumerate(r.array(raw_list, path)):
        p = path + (i,)
        raw = r.table(raw, p, ("proto", "host_port", "host_addr", "guest", "guest_port"))
        proto = r.proto(raw, p)
        host = r.port(raw["host_port"], p + ("host_port",)) if "host_port" in raw else r.get(raw, "host_port", p, int)
        guest_ports = r.port(raw["guest_port"], p + ("guest_port",)) if "guest_port" in raw else host
        host_addr = r.ipv4(raw, "host_addr", p, None)
        target = r.get(raw, "guest", p, str)
        if host and guest_ports and host[1] - host[0] != guest_ports[1] - guest_ports[0]:
            r.error(p + ("guest_port",), f"range {guest_ports[0]}-{guest_ports[1]} is not the same size as host_port {host[0]}-{host[1]}")
            guest_ports = None
        guest_ip, guest_name = _target(r, net, target, p + ("guest",), guests_by_name)
        if None not in (proto, host, guest_ports) and (guest_ip is not None or net.mode == "passt" and guest_name):
            out.append(Forward(proto, host, guest_ip, guest_ports, guest_name, host_addr, i))
    return tuple(out)


def _target(r: Reader, net: Network, target, path: tuple, guests_by_name: dict):
    """(guest ip, guest name or None) for `guest = "web"` or `guest = "192.168.122.10"`."""
    if target is None:
        return None, None
    if net.mode == "passt":
        return None, _passt_target(r, net, target, path, guests_by_name)
    try:
        ip = ip_address(target)
    except ValueError:
        ip = None
    if ip is not None:
        if net.subnet is not None and check_host_address(r, path, ip, net.subnet):
            if ip == net.gateway:
                r.error(path, f"{ip} is the gateway (the host itself), not a guest")
                return None, None
            return ip, None
        return None, None
    guest = guests_by_name.get(target)
    if guest is None:
        if not r.flawed(("guests", target)):  # a guest with a bad name is reported as such
            r.error(path, f"unknown guest {target!r}")
        return None, None
    ips = [n.ip for n in guest.nics if n.network == net.name and n.ip is not None]
    if not ips and r.flawed(("guests", target, "nics")):
        return None, None  # its NICs' problems are reported; "no static ip" would be one of them again
    if not ips:
        r.error(path, f"guest {target!r} has no static ip on network {net.name!r}; a port forward needs one (set guests.{target}.nics[].ip)")
        return None, None
    return ips[0], target


def _passt_target(r: Reader, net: Network, target: str, path: tuple, guests_by_name: dict) -> str | None:
    """The guest whose passt forwards the port: it needs a NIC on this network."""
    guest = guests_by_name.get(target)
    if guest is None:
        r.error(path, f"unknown guest {target!r} (on a passt network a forward names a guest: its own passt forwards the port)")
        return None
    if not any(n.network == net.name for n in guest.nics):
        r.error(path, f"guest {target!r} has no NIC on network {net.name!r}")
        return None
    return target


def _check_port_overlaps(r: Reader, ports: list) -> None:
    """Host port ranges may not overlap per protocol: a sort and one sweep, not all pairs
    (20000 forwards would take seconds)."""
    by_order = sorted(ports, key=lambda p: (p[0], p[1], p[4]))
    reach: dict[str, tuple[int, str]] = {}  # proto -> (highest port so far, where)
    flagged = []
    for proto, lo, hi, where, path in by_order:
        top = reach.get(proto)
        if top and lo <= top[0]:
            flagged.append((path, f"{proto} host port {_ports((lo, hi))} overlaps {top[1]}"))
        if not top or hi > top[0]:
            reach[proto] = (hi, where)
    for path, reason in sorted(flagged, key=lambda f: f[0]):
        r.error(path, reason)


def _ports(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}-{p[1]}"
