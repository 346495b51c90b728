"""IPv6 on nat, routed and isolated networks: subnet6, gateway6, nat6 and [networks.N.dhcp6] ->
model fields; a NIC's static ip6; and the checks across networks and guests. Pure.

Without a dhcp6 range guests configure themselves from kvmnet's router advertisements (SLAAC),
which needs a /64; with one, stateful DHCPv6 hands out the range (and SLAAC too on a /64)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network, ip_address, ip_network

from ..model import Dhcp6
from .tomlread import Reader, check_range


KEYS = {"nat": ("subnet6", "gateway6", "nat6", "dhcp6"),
        "routed": ("subnet6", "gateway6", "dhcp6"),
        "isolated": ("subnet6", "gateway6", "dhcp6")}
SLAAC_PREFIXLEN = 64
MAX_PREFIXLEN = 120  # a stateful-only prefix still needs room for a gateway and a range


def network_fields(r: Reader, raw: dict, path: tuple, mode: str) -> dict:
    """The model fields of a network's IPv6 keys (none when subnet6 is not given)."""
    if mode not in KEYS:
        return {}
    for key in ("gateway6", "nat6", "dhcp6"):
        if key in raw and "subnet6" not in raw:
            r.error(path + (key,), "needs subnet6 (the network's IPv6 prefix)")
    nat6 = bool(r.get(raw, "nat6", path, bool, False)) if mode == "nat" else False
    has_dhcp6 = "dhcp6" in raw
    subnet6 = _subnet6(r, raw, path, has_dhcp6) if "subnet6" in raw else None
    if subnet6 is None:
        return {}
    gateway6 = r.ipv6(raw, "gateway6", path)
    if gateway6 is None and "gateway6" not in raw:
        gateway6 = subnet6.network_address + 1
    elif gateway6 is not None and not check_in_prefix(r, path + ("gateway6",), gateway6, subnet6):
        gateway6 = None
    dhcp6 = _dhcp6(r, raw["dhcp6"], path + ("dhcp6",), subnet6, gateway6) if has_dhcp6 else None
    return {"subnet6": subnet6, "gateway6": gateway6, "nat6": nat6, "dhcp6": dhcp6}


def _subnet6(r: Reader, raw: dict, path: tuple, stateful: bool) -> IPv6Network | None:
    p = path + ("subnet6",)
    text = r.get(raw, "subnet6", path, str, None)
    if text is None:
        return None
    try:
        net = ip_network(text, strict=False)
    except ValueError:
        r.error(p, f"{text!r} is not an IPv6 prefix in CIDR form (like fd00:dead:beef:1::/64)")
        return None
    if not isinstance(net, IPv6Network):
        r.error(p, f"{text} is IPv4; subnet6 takes an IPv6 prefix (like fd00:dead:beef:1::/64)")
        return None
    if "/" not in text:
        r.error(p, f"{text!r} has no prefix length (like {text}/64)")
        return None
    if net.network_address != ip_address(text.split("/")[0].strip()):
        r.error(p, f"{text} has host bits set; did you mean {net}?")
        return None
    if net.is_link_local or net.is_multicast or net.is_loopback or net.network_address.ipv4_mapped \
            or net.overlaps(ip_network("::/8")):
        r.error(p, f"{net} is not a prefix guests can use (link-local, multicast, loopback or reserved)")
        return None
    if not stateful and net.prefixlen != SLAAC_PREFIXLEN:
        r.error(p, f"/{net.prefixlen}: SLAAC needs a /64 (or give a [dhcp6] range for stateful DHCPv6)")
        return None
    if not SLAAC_PREFIXLEN <= net.prefixlen <= MAX_PREFIXLEN:
        r.error(p, f"/{net.prefixlen} is outside /{SLAAC_PREFIXLEN}-/{MAX_PREFIXLEN}")
        return None
    return net


def check_in_prefix(r: Reader, path: tuple, addr: IPv6Address, prefix: IPv6Network) -> bool:
    """A host address of the prefix: inside it, and not its subnet-router anycast address."""
    if addr not in prefix:
        r.error(path, f"{addr} is outside subnet6 {prefix}")
        return False
    if addr == prefix.network_address:
        r.error(path, f"{addr} is the subnet-router anycast address of {prefix}")
        return False
    return True


def _dhcp6(r: Reader, raw, path: tuple, prefix: IPv6Network, gateway6) -> Dhcp6 | None:
    if not isinstance(raw, dict):
        r.table(raw, path, ())
        return None
    r.table(raw, path, ("start", "end", "lease_time"))
    start, end = r.ipv6(raw, "start", path), r.ipv6(raw, "end", path)
    for key in ("start", "end"):
        if key not in raw:
            r.error(path + (key,), "is required")
    lease = r.lease_time(raw, path)
    if start is None or end is None:
        return None
    ok = check_range(r, path, start, end, prefix, check_in_prefix)
    if ok and gateway6 is not None and start <= gateway6 <= end:
        r.error(path + ("start",), f"range {start}-{end} holds the gateway6 {gateway6}")
        return None
    return Dhcp6(start, end, lease or "1h") if ok else None


def nic_ip6(r: Reader, raw: dict, path: tuple) -> IPv6Address | None:
    return r.ipv6(raw, "ip6", path)


def no_prefix_overlaps(r: Reader, networks) -> None:
    nets = [n for n in networks if n.subnet6 is not None]
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            if a.subnet6.overlaps(b.subnet6):
                r.error(("networks", b.name, "subnet6"), f"{b.subnet6} overlaps networks.{a.name}.subnet6 {a.subnet6}")


def check_nic_ip6(r: Reader, seen: dict, net, nic, p: tuple, where: str) -> None:
    """A static ip6: on a network with subnet6 and a dhcp6 range (DHCPv6 hands it out), inside
    the prefix, not the gateway, used once."""
    if nic.ip6 is None:
        return
    if net.subnet6 is None:
        r.error(p + ("ip6",), f"a static ip6 needs a network with subnet6 (networks.{net.name} has none)")
        return
    if net.dhcp6 is None:
        r.error(p + ("ip6",), f"a static ip6 needs [networks.{net.name}.dhcp6] (DHCPv6 hands it out)")
        return
    if not check_in_prefix(r, p + ("ip6",), nic.ip6, net.subnet6):
        return
    if nic.ip6 == net.gateway6:
        r.error(p + ("ip6",), f"{nic.ip6} is the gateway6 of networks.{net.name}")
    elif (net.name, nic.ip6) in seen:
        r.error(p + ("ip6",), f"{nic.ip6} is also the ip6 of {seen[(net.name, nic.ip6)]}")
    seen[(net.name, nic.ip6)] = where
