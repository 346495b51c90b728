"""QEMU-only networks in topology files: user mode (slirp) and socket links. Nothing on the
host; kvmnet validates them and renders QEMU's options (render/qemu.py)."""

from __future__ import annotations

import os
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ..model import GuestFwd, HostFwd, Network, SocketNet, UserNet
from .tomlread import Reader, check_host_address


def user_net(r: Reader, raw: dict, path: tuple) -> UserNet | None:
    defaults = UserNet()
    net = defaults.net
    if "net" in raw:
        text = r.get(raw, "net", path, str)
        net = _user_subnet(r, text, path + ("net",)) if text is not None else None
    if net is None:
        return None
    base = int(net.network_address)
    host = r.ipv4(raw, "host", path, IPv4Address(base + 2))
    dns = r.ipv4(raw, "dns", path, IPv4Address(base + 3))
    dhcpstart = r.ipv4(raw, "dhcpstart", path, IPv4Address(base + 15))
    for key, value in (("host", host), ("dns", dns), ("dhcpstart", dhcpstart)):
        if value is not None:
            check_host_address(r, path + (key,), value, net)
    if host is not None and host == dns:
        r.error(path + ("dns",), f"{dns} must differ from host {host}")
    if host is not None and host == dhcpstart:
        r.error(path + ("dhcpstart",), f"{dhcpstart} is the host address; guests' addresses start after it")
    restrict = r.get(raw, "restrict", path, bool, False)
    hostfwd = _hostfwds(r, raw.get("hostfwd", []), path + ("hostfwd",), net, dhcpstart)
    guestfwd = _guestfwds(r, raw.get("guestfwd", []), path + ("guestfwd",), net)
    strings = {}
    for key in ("hostname", "domainname", "tftp", "bootfile", "smb"):
        value = r.get(raw, key, path, str, None)
        if value is not None and ("," in value or "\n" in value or not value):
            r.error(path + (key,), "must be non-empty and contain no commas or newlines (QEMU option syntax)")
            value = None
        strings[key] = value
    for key in ("tftp", "smb"):
        if strings[key] is not None and not os.path.isabs(strings[key]):
            r.error(path + (key,), "must be an absolute path")
    ipv6 = r.get(raw, "ipv6", path, bool, None)
    return UserNet(net=net, host=host or defaults.host, dns=dns or defaults.dns,
                   dhcpstart=dhcpstart or defaults.dhcpstart, restrict=bool(restrict),
                   hostfwd=hostfwd, guestfwd=guestfwd, ipv6=ipv6, **strings, **_user_ipv6(r, raw, path, ipv6))


USER_IPV6_KEYS = ("ipv6-net", "ipv6-host", "ipv6-dns")
USER_IPV6_DEFAULT = IPv6Network("fec0::/64")  # QEMU's


def _user_ipv6(r: Reader, raw: dict, path: tuple, ipv6: bool | None) -> dict:
    """ipv6-net, ipv6-host and ipv6-dns with QEMU's rules: a prefix of at most /126 (default
    fec0::/64), host and DNS inside it (default ::2 and ::3), none of them with ipv6 = false.
    All three are rendered when any is given; none otherwise (QEMU's defaults)."""
    given = [k for k in USER_IPV6_KEYS if k in raw]
    if not given:
        return {}
    if ipv6 is False:
        r.error(path + (given[0],), "IPv6 is off (ipv6 = false): remove this key or turn IPv6 on")
        return {}
    prefix = USER_IPV6_DEFAULT
    if "ipv6-net" in raw:
        text = r.get(raw, "ipv6-net", path, str)
        try:
            prefix = ip_network(text if "/" in text else f"{text}/64", strict=False) if text is not None else None
        except ValueError:
            prefix = None
        if text is not None and (not isinstance(prefix, IPv6Network) or prefix.prefixlen > 126):
            r.error(path + ("ipv6-net",), f"{text!r} must be an IPv6 prefix of at most /126 (addr/len)")
        if not isinstance(prefix, IPv6Network) or prefix.prefixlen > 126:
            return {}
    addrs = {}
    for key, offset in (("ipv6-host", 2), ("ipv6-dns", 3)):
        addrs[key] = _ipv6_in(r, raw, key, path, prefix) if key in raw else prefix.network_address + offset
    if None not in addrs.values() and addrs["ipv6-host"] == addrs["ipv6-dns"]:
        r.error(path + ("ipv6-dns",), f"{addrs['ipv6-dns']} must differ from ipv6-host {addrs['ipv6-host']}")
    return {"ipv6_net": prefix, "ipv6_host": addrs["ipv6-host"], "ipv6_dns": addrs["ipv6-dns"]}


def _ipv6_in(r: Reader, raw: dict, key: str, path: tuple, prefix: IPv6Network) -> IPv6Address | None:
    text = r.get(raw, key, path, str)
    try:
        addr = ip_address(text) if text is not None else None
    except ValueError:
        addr = None
    if text is not None and not isinstance(addr, IPv6Address):
        r.error(path + (key,), f"{text!r} is not an IPv6 address")
        return None
    if addr is not None and addr not in prefix:
        r.error(path + (key,), f"{addr} is outside ipv6-net {prefix}")
        return None
    return addr


def _user_subnet(r: Reader, text: str, path: tuple) -> IPv4Network | None:
    """QEMU's net= takes addr/prefix, addr/mask, or a bare address (then /24)."""
    try:
        net = ip_network(text if "/" in text else f"{text}/24", strict=False)
    except ValueError:
        r.error(path, f"{text!r} is not addr/prefix or addr/netmask")
        return None
    if not isinstance(net, IPv4Network) or net.prefixlen > 30 or net.prefixlen < 8:
        r.error(path, f"{text} must be an IPv4 network between /8 and /30")
        return None
    return net


def _hostfwds(r: Reader, raw_list, path: tuple, net, dhcpstart) -> tuple:
    out, seen = [], {}
    for i, raw in enumerate(r.array(raw_list, path)):
        p = path + (i,)
        raw = r.table(raw, p, ("proto", "host_addr", "host_port", "guest_addr", "guest_port"))
        proto = r.proto(raw, p)
        host_addr = r.ipv4(raw, "host_addr", p, None)
        guest_addr = r.ipv4(raw, "guest_addr", p, None)
        if guest_addr is not None and guest_addr not in net:
            r.error(p + ("guest_addr",), f"{guest_addr} is outside net {net}")
        elif guest_addr is not None:
            check_host_address(r, p + ("guest_addr",), guest_addr, net)
        ports = []
        for key in ("host_port", "guest_port"):
            value = r.get(raw, key, p, int)
            if value is not None and not 1 <= value <= 65535:
                r.error(p + (key,), f"{value} is outside 1-65535")
                value = None
            ports.append(value)
        if proto and None not in ports:
            ident = (proto, host_addr, ports[0])
            if ident in seen:
                r.error(p + ("host_port",), f"duplicate of hostfwd[{seen[ident]}] ({proto} port {ports[0]})")
                continue
            seen[ident] = i
            out.append(HostFwd(proto, host_addr, ports[0], guest_addr, ports[1]))
    return tuple(out)


def _guestfwds(r: Reader, raw_list, path: tuple, net) -> tuple:
    out = []
    for i, raw in enumerate(r.array(raw_list, path)):
        p = path + (i,)
        raw = r.table(raw, p, ("server_addr", "server_port", "target"))
        addr = r.ipv4(raw, "server_addr", p)
        port = r.get(raw, "server_port", p, int)
        target = r.get(raw, "target", p, str)
        if addr is not None and addr not in net:
            r.error(p + ("server_addr",), f"{addr} is outside net {net}")
        if port is not None and not 1 <= port <= 65535:
            r.error(p + ("server_port",), f"{port} is outside 1-65535")
            port = None
        hostport = re.fullmatch(r"[A-Za-z0-9.\-]+:(\d{1,5})", target or "", re.ASCII)
        if target is not None and not (target.startswith("cmd:") and target[4:].strip() or hostport):
            r.error(p + ("target",), f"{target!r} must be HOST:PORT or cmd:COMMAND")
            target = None
        elif hostport and not 1 <= int(hostport.group(1)) <= 65535:
            r.error(p + ("target",), f"port {hostport.group(1)} is outside 1-65535")
            target = None
        if target is not None and "," in target:
            r.error(p + ("target",), "must not contain commas (QEMU option syntax)")
            target = None
        if None not in (addr, port, target):
            out.append(GuestFwd(addr, port, target))
    return tuple(out)


def socket_net(r: Reader, name: str, raw: dict, path: tuple) -> Network | None:
    transport = r.get(raw, "transport", path, str)
    if transport not in (None, "tcp", "udp", "mcast"):
        r.error(path + ("transport",), f"{transport!r} must be tcp, udp or mcast")
        return None
    default_addr = "230.0.0.1" if transport == "mcast" else "127.0.0.1"
    address = r.ipv4(raw, "address", path, IPv4Address(default_addr))
    port = r.get(raw, "port", path, int)
    if port is not None and not 1 <= port <= 65535:
        r.error(path + ("port",), f"{port} is outside 1-65535")
        port = None
    if transport == "mcast" and address is not None and not address.is_multicast:
        r.error(path + ("address",), f"{address} is not a multicast address (224.0.0.0/4)")
    localaddr = r.ipv4(raw, "localaddr", path, None)
    if transport == "udp" and port == 65535:
        r.error(path + ("port",), "a udp link uses port and port + 1; 65535 leaves no room")
        port = None
    if None in (transport, address, port):
        return None
    return Network(name, "socket", socket=SocketNet(transport, address, port, localaddr))
