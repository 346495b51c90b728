"""Rules that span networks and guests: every interface name, subnet, MAC, static ip, tap and
socket port used once; NICs only on networks that exist and can carry what they ask for.
Runs after derive.py, so derived MACs and taps are checked like given ones."""

from __future__ import annotations

from ..model import Guest, Network, Nic, VIRTUAL_MODES
from . import ipv6, seed_opts
from .tomlread import Reader, check_host_address


def cross_check(r: Reader, networks: list[Network], guests: list[Guest]) -> None:
    ifnames = _unique_ifnames(r, networks)
    _no_subnet_overlaps(r, networks)
    ipv6.no_prefix_overlaps(r, networks)
    by_name = {n.name: n for n in networks}
    members = _nics(r, by_name, guests, ifnames)
    seed_opts.check_vde_joins(r, networks)
    _socket_ports(r, networks)
    _socket_links(r, by_name, members)


def _unique_ifnames(r: Reader, networks: list[Network]) -> dict[str, str]:
    """Bridges and uplinks: interface name -> network."""
    ifnames: dict[str, str] = {}
    for net in networks:
        for key in ("bridge", "uplink"):
            ifname = getattr(net, key)
            if ifname is None:
                continue
            if ifname in ifnames:
                r.error(("networks", net.name, key), f"{ifname} is already used by networks.{ifnames[ifname]}")
            ifnames[ifname] = net.name
    return ifnames


def _no_subnet_overlaps(r: Reader, networks: list[Network]) -> None:
    """All pairs: at most 256 networks, and every overlapping pair is worth a message."""
    subnets = [(n, n.subnet) for n in networks if n.subnet is not None]
    for i, (a, sa) in enumerate(subnets):
        for b, sb in subnets[i + 1:]:
            if sa.overlaps(sb):
                r.error(("networks", b.name, "subnet"), f"{sb} overlaps networks.{a.name}.subnet {sa}")


class _Seen:
    """What earlier NICs use, for 'is also used by' messages."""

    def __init__(self, ifnames: dict[str, str]):
        self.ifnames = ifnames
        self.macs: dict[str, str] = {}
        self.ips: dict[tuple, str] = {}
        self.ip6s: dict[tuple, str] = {}
        self.taps: dict[str, str] = {}
        self.socket_members: dict[str, list[str]] = {}


def _nics(r: Reader, by_name: dict[str, Network], guests: list[Guest], ifnames: dict[str, str]) -> dict:
    """Checks every NIC; returns the guests on each socket network."""
    seen = _Seen(ifnames)
    for net in by_name.values():  # a bridge's MAC, like a NIC's, is one station on the LAN
        if net.mac is not None and net.mac in seen.macs:
            r.error(("networks", net.name, "mac"), f"{net.mac} is also the MAC of {seen.macs[net.mac]}")
        elif net.mac is not None:
            seen.macs[net.mac] = f"networks.{net.name}"
    for guest in guests:
        for i, nic in enumerate(guest.nics):
            p = ("guests", guest.name, "nics", i)
            net = by_name.get(nic.network)
            if net is None:
                if not r.flawed(("networks", nic.network)):  # else its own problem is reported
                    r.error(p + ("network",), f"unknown network {nic.network!r}")
                continue
            _nic(r, seen, net, guest.name, nic, p, f"guests.{guest.name}.nics[{i}]")
    return seen.socket_members


def _nic(r: Reader, seen: _Seen, net: Network, guest: str, nic: Nic, p: tuple, where: str) -> None:
    if nic.mac in seen.macs:
        r.error(p + ("mac",), f"{nic.mac} is also the MAC of {seen.macs[nic.mac]}")
    seen.macs[nic.mac] = where
    if nic.ip is not None and not r.flawed(("networks", net.name, "subnet")):  # a bad subnet is reported once
        if net.subnet is None or net.mode not in VIRTUAL_MODES:
            r.error(p + ("ip",), f"a static ip needs a network with a subnet and DHCP ({net.name} is {net.mode})")
        elif check_host_address(r, p + ("ip",), nic.ip, net.subnet):
            if nic.ip == net.gateway:
                r.error(p + ("ip",), f"{nic.ip} is the gateway of networks.{net.name}")
            elif (net.name, nic.ip) in seen.ips:
                r.error(p + ("ip",), f"{nic.ip} is also the ip of {seen.ips[(net.name, nic.ip)]}")
            seen.ips[(net.name, nic.ip)] = where
    ipv6.check_nic_ip6(r, seen.ip6s, net, nic, p, where)
    if net.mode == "socket":
        members = seen.socket_members.setdefault(net.name, [])
        if guest in members:
            r.error(p + ("network",), f"guest {guest} already has a NIC on socket network {net.name}")
        else:
            members.append(guest)
    if net.bridged:
        if nic.tap in seen.taps or nic.tap in seen.ifnames:
            r.error(p + ("tap",), f"tap {nic.tap} is also used by {seen.taps.get(nic.tap) or 'a network'}")
        seen.taps[nic.tap] = where
    elif nic.tap is not None:
        r.error(p + ("tap",), f"only NICs on bridged networks have taps ({net.name} is {net.mode})")
    seed_opts.check_tap_only(r, nic, net, p)


def _socket_ports(r: Reader, networks: list[Network]) -> None:
    """tcp listens on port; a udp link's two ends use port and port + 1."""
    bound: dict[tuple, str] = {}
    for net in networks:
        if net.mode == "socket" and net.socket.transport in ("tcp", "udp"):
            s = net.socket
            for port in (s.port, s.port + 1) if s.transport == "udp" else (s.port,):
                key = (s.transport, str(s.address), port)
                if key in bound:
                    r.error(("networks", net.name, "port"), f"{key[0]} {s.address}:{port} is also used by networks.{bound[key]}")
                bound[key] = net.name


def _socket_links(r: Reader, by_name: dict[str, Network], members: dict[str, list[str]]) -> None:
    for name, guests in members.items():
        net = by_name[name]
        if net.socket.transport in ("tcp", "udp") and len(guests) > 2:
            r.error(("networks", name, "transport"), f"a {net.socket.transport} link joins exactly two guests, but {len(guests)} use it ({', '.join(guests)}); use transport = \"mcast\"")


def backend_limits(r: Reader, firewall: str | None, networks: list[Network]) -> None:
    """What the file's own firewall choice cannot do is decidable from the file alone."""
    if firewall != "iptables":
        return  # auto/nftables: plan refuses --firewall iptables on this host (render/iptables.py)
    for net in networks:
        if net.spoof_protection:
            r.error(("networks", net.name, "spoof_protection"), "needs the nftables backend (bridge-level rules), "
                    "but this file sets firewall = \"iptables\"; drop one of them")
