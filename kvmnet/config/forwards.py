"""[[networks.NAME.forwards]] -> model.Forward. Read after the guests, whom they name; host port
ranges must not overlap across all networks. nat networks DNAT them to the guest's address;
passt networks (same syntax) hand them to the guest's own passt, so there they name a guest."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from ..errors import InputError, Problem
from ..model import Forward, Guest, Network
from .tomlpos import line_of
from .ipv6 import check_in_prefix
from .tomlread import Reader, check_host_address, dotted_quad
from .values import evolve, maker

FORWARDING_MODES = ("nat", "passt")
MAX_FORWARDS = 20000  # in all; each is one map element, but a file this big is a mistake


def with_forwards(r: Reader, networks: list[Network], raw_networks: dict, guests: list[Guest]) -> list[Network]:
    """The networks with their forwards; InputError at once past MAX_FORWARDS."""
    guests_by_name = {g.name: g for g in guests}
    static_ips = _static_ips(guests)
    total, out = 0, []
    ports: list[tuple[str, int, str, int, int]] = []  # proto, low, network, index, high
    for net in networks:
        raw = raw_networks[net.name]
        if net.mode not in FORWARDING_MODES or "forwards" not in raw:
            out.append(net)
            continue
        path = ("networks", net.name, "forwards")
        total += len(raw["forwards"]) if isinstance(raw["forwards"], list) else 0
        if total > MAX_FORWARDS:
            raise InputError([Problem(r.file, line_of(r.lines, path), f"networks.{net.name}.forwards", f"too many port forwards (at most {MAX_FORWARDS} in all)")])
        # the shortcut's guests (none on passt and nat6 networks: their forwards take the full path)
        plain = static_ips.get(net.name, {}) if net.mode == "nat" and not net.nat6 else {}
        fwds = _forwards(r, net, raw["forwards"], path, guests_by_name, plain)
        ports += [(f.proto, f.host_ports[0], net.name, f.index, f.host_ports[1]) for f in fwds]
        out.append(evolve(net, forwards=fwds))
    _check_port_overlaps(r, ports)
    return out


def _forwards(r: Reader, net: Network, raw_list, path: tuple, guests_by_name: dict, static_ips: dict) -> tuple:
    out = []
    items = r.array(raw_list, path)
    for i, (raw, quick) in enumerate(zip(items, _plain_forwards(items, static_ips, _host_span(net)))):
        if quick is not None:
            out.append(quick)
            continue
        p = path + (i,)
        raw = r.table(raw, p, ("proto", "host_port", "host_addr", "guest", "guest_port"))
        proto = r.proto(raw, p)
        host = r.port(raw["host_port"], p + ("host_port",)) if "host_port" in raw else r.get(raw, "host_port", p, int)
        guest_ports = r.port(raw["guest_port"], p + ("guest_port",)) if "guest_port" in raw else host
        host_addr = _host_addr(r, net, raw, p)
        target = r.get(raw, "guest", p, str)
        if host and guest_ports and host[1] - host[0] != guest_ports[1] - guest_ports[0]:
            r.error(p + ("guest_port",), f"range {guest_ports[0]}-{guest_ports[1]} is not the same size as host_port {host[0]}-{host[1]}")
            guest_ports = None
        if host_addr is False:
            continue
        ip, ip6, guest_name = _target(r, net, target, p + ("guest",), guests_by_name, host_addr)
        if None not in (proto, host, guest_ports) and (ip or ip6 or net.mode == "passt" and guest_name):
            out.append(Forward(proto, host, ip, guest_ports, guest_name, host_addr, i, ip6))
    return tuple(out)


_PLAIN_KEYS = frozenset({"proto", "host_port", "guest", "guest_port"})


def _static_ips(guests: list[Guest]) -> dict[str, dict]:
    """network -> {guest -> its static IPv4 address there (its first NIC on it with one)}, for
    _plain_forward: one pass over the guests, not one per network."""
    out: dict[str, dict] = {}
    for guest in guests:
        for nic in guest.nics:
            if nic.ip is not None:
                out.setdefault(nic.network, {}).setdefault(guest.name, nic.ip)
    return out


def _host_span(net: Network) -> tuple[int, int, int] | None:
    """(network, broadcast, gateway) of a plain nat network's subnet as integers: a literal
    guest address strictly between the first two, and not the third, is one of its hosts."""
    if net.mode != "nat" or net.nat6 or net.subnet is None or net.subnet.version != 4:
        return None
    gateway = int(net.gateway) if net.gateway is not None else -1
    return int(net.subnet.network_address), int(net.subnet.broadcast_address), gateway


def _literal_host(text: str, hosts: tuple[int, int, int] | None) -> IPv4Address | None:
    """A guest given by its IPv4 address, when that is a host of the network and not its
    gateway (anything else takes the full path, which says what is wrong)."""
    value = dotted_quad(text) if hosts is not None else None
    if value is None:
        return None
    low, high, gateway = hosts
    return IPv4Address(value) if low < value < high and value != gateway else None


def _plain_forwards(items: list, static_ips: dict, hosts: tuple[int, int, int] | None) -> list:
    """For each item, the Forward the full path makes of the common shape (one port each side,
    tcp or udp, no host_addr, a guest by name with a static ip or by an IPv4 address on the
    network), made without its checks' overhead; None: anything else, for the full path and its
    messages. One loop for the list, its checks written out: 10,000 forwards took ~40 ms through
    the full path, ~12 through a function per forward, ~8 so."""
    out: list = []
    keys, make = _PLAIN_KEYS, _forward
    for i, raw in enumerate(items):
        if type(raw) is not dict or not keys.issuperset(raw):
            out.append(None)
            continue
        proto, host, guest = raw.get("proto", "tcp"), raw.get("host_port"), raw.get("guest")
        guest_port = raw.get("guest_port", host)
        if (proto != "tcp" and proto != "udp") or type(host) is not int or not 0 < host < 65536 \
                or type(guest_port) is not int or not 0 < guest_port < 65536 or type(guest) is not str:
            out.append(None)
            continue
        ip, name = static_ips.get(guest), guest
        if ip is None:  # by address: the Forward names no guest, as the full path's
            ip, name = _literal_host(guest, hosts), None
        out.append(None if ip is None else make((proto, (host, host), ip, (guest_port, guest_port), name, None, i, None)))
    return out


_forward = maker(Forward)  # Forward(*values) in half the time (values.py)


def _host_addr(r: Reader, net: Network, raw: dict, p: tuple):
    """The host address of a forward (either family), None for all of them, False if wrong.
    An IPv6 one needs nat6: on a nat network without it the IPv6 prefix is routed, guests are
    reached at their own addresses and there is nothing to translate."""
    text = r.get(raw, "host_addr", p, str, None)
    if text is None:
        return None
    try:
        addr = ip_address(text)
    except ValueError:
        r.error(p + ("host_addr",), f"{text!r} is not an IP address")
        return False
    if isinstance(addr, IPv6Address) and not net.nat6:
        r.error(p + ("host_addr",), f"{addr} is IPv6: {_no_nat6(net)}")
        return False
    if isinstance(addr, IPv6Address) and addr.is_loopback:
        r.error(p + ("host_addr",), "::1 cannot be forwarded: the kernel never routes IPv6 loopback traffic to "
                "another host (IPv6 has no route_localnet); use one of the host's own IPv6 addresses")
        return False
    return addr


def _no_nat6(net: Network) -> str:
    if net.subnet6 is None:
        return f"an IPv6 port forward needs subnet6 and nat6 = true on networks.{net.name}"
    return (f"networks.{net.name} routes its IPv6 prefix (no nat6 = true): guests are reached at their own "
            "ip6, there is nothing to forward")


def _target(r: Reader, net: Network, target, path: tuple, guests_by_name: dict, host_addr):
    """(ip, ip6, guest name or None) for `guest = "web"` or a guest address. A forward reaches
    the families its host_addr has (both without one: IPv6 with nat6 and a static ip6)."""
    if target is None:
        return None, None, None
    if net.mode == "passt":  # the guest's own passt forwards the port: no address to translate to
        return None, None, _passt_target(r, net, target, path, guests_by_name)
    guest = guests_by_name.get(target)  # a guest name has no '.' or ':', so it is never an address
    if guest is None:
        try:
            ip = ip_address(target)
        except ValueError:
            ip = None
        if ip is not None:
            return (*_literal_target(r, net, ip, path, host_addr), None)
        if not r.flawed(("guests", target)):  # a guest with a bad name is reported as such
            r.error(path, f"unknown guest {target!r}")
        return None, None, None
    ip = next((n.ip for n in guest.nics if n.network == net.name and n.ip is not None), None)
    ip6 = next((n.ip6 for n in guest.nics if n.network == net.name and n.ip6 is not None), None) if net.nat6 else None
    if isinstance(host_addr, IPv6Address):
        if ip6 is None:
            r.error(path, f"guest {target!r} has no static ip6 on network {net.name!r}; an IPv6 port forward needs one (set guests.{target}.nics[].ip6)")
        return None, ip6, target
    if ip is None and (host_addr is not None or ip6 is None):
        if r.flawed(("guests", target, "nics")):
            return None, None, None  # its NICs' problems are reported; "no static ip" would be one of them again
        also = " (or ip6)" if net.nat6 and host_addr is None else ""
        r.error(path, f"guest {target!r} has no static ip{also} on network {net.name!r}; a port forward needs one (set guests.{target}.nics[].ip)")
        return None, None, None
    return ip, ip6 if host_addr is None else None, target


def _literal_target(r: Reader, net: Network, ip, path: tuple, host_addr) -> tuple:
    """(ip, ip6) for a guest given by address: the family of its host_addr, if any."""
    if host_addr is not None and ip.version != host_addr.version:
        r.error(path, f"{ip} is IPv{ip.version} and host_addr {host_addr} is IPv{host_addr.version}")
        return None, None
    if isinstance(ip, IPv4Address):
        if net.subnet is not None and check_host_address(r, path, ip, net.subnet):
            if ip == net.gateway:
                r.error(path, f"{ip} is the gateway (the host itself), not a guest")
                return None, None
            return ip, None
        return None, None
    if not net.nat6:
        r.error(path, f"{ip} is IPv6: {_no_nat6(net)}")
    elif check_in_prefix(r, path, ip, net.subnet6):
        if ip == net.gateway6:
            r.error(path, f"{ip} is the gateway6 (the host itself), not a guest")
            return None, None
        return None, ip
    return None, None


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
    (20000 forwards would take seconds). `ports`: (proto, low, network, index, high), which sort
    as the forwards' key paths do; the words for a problem are made only for a problem."""
    reach: dict[str, tuple] = {}  # proto -> (highest port so far, its network, its index)
    flagged = []
    for proto, lo, net, index, hi in sorted(ports):
        top = reach.get(proto)
        if top and lo <= top[0]:
            flagged.append((("networks", net, "forwards", index, "host_port"),
                            f"{proto} host port {_ports((lo, hi))} overlaps networks.{top[1]}.forwards[{top[2]}]"))
        if not top or hi > top[0]:
            reach[proto] = (hi, net, index)
    for path, reason in sorted(flagged, key=lambda f: f[0]):
        r.error(path, reason)


def _ports(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}-{p[1]}"
