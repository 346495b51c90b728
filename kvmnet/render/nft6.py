"""The IPv6 rules of kvmnet's inet table (render/nft.py places them): the same model as IPv4.

Forward: into a network, a routed prefix (routed networks, and nat networks without nat6, as
libvirt routes IPv6 by default) or replies and forwarded ports (nat6); out of it, its prefix.
Input: DHCPv6, DNS, router and neighbour solicitations from the bridge; the gateway6's DHCPv6
and DNS ports dropped from anywhere else. Postrouting (nat6): masquerade of the prefix going
elsewhere, except link-scope multicast (ff02::/16), as libvirt does, and of hairpin traffic.
Port forwards (nat6 only: a routed prefix has nothing to translate): map elements, as IPv4's.
Spoof protection (bridge table, per tap): the guest's IPv6 sources and neighbour advertisements
are its own addresses; it sends no router advertisements or redirects."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from ..model import Network, Nic, ROUTING_MODES

ND_TYPES = "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert"


def routes_prefix(net: Network) -> bool:
    """Inbound IPv6 to the prefix is routed (not only replies): routed mode, nat without nat6."""
    return net.mode == "routed" or net.mode == "nat" and not net.nat6


def inbound(net: Network) -> list[str]:
    br, sub = net.bridge, net.subnet6
    if sub is None or net.mode not in ROUTING_MODES:
        return []
    if routes_prefix(net):
        return [f'oifname "{br}" ip6 daddr {sub} accept']
    return [f'oifname "{br}" ip6 daddr {sub} ct state established,related accept',
            f'oifname "{br}" ip6 daddr {sub} ct status dnat accept']


def outbound(net: Network) -> list[str]:
    if net.subnet6 is None or net.mode not in ROUTING_MODES:
        return []
    return [f'iifname "{net.bridge}" ip6 saddr {net.subnet6} accept']


def service_rules(net: Network, chains: dict[str, list[str]]) -> None:
    br, sub = net.bridge, net.subnet6
    if sub is None:
        return
    inp = chains["input"]
    inp.append(f'iifname != {{ "{br}", "lo" }} ip6 daddr {net.gateway6} meta l4proto {{ tcp, udp }} th dport 53 drop')
    inp.append(f'iifname != "{br}" ip6 daddr {net.gateway6} meta l4proto {{ tcp, udp }} th dport 547 drop')
    inp.append(f'iifname "{br}" udp dport 547 accept')
    inp.append(f'iifname "{br}" icmpv6 type {{ {ND_TYPES} }} accept')
    if net.mode != "nat" or not net.nat6:
        return
    post = chains["postrouting"]
    post.append(f"ip6 saddr {sub} ip6 daddr ff02::/16 return")
    post.append(f"meta l4proto {{ tcp, udp }} ip6 saddr {sub} ip6 daddr != {sub} masquerade to :1024-65535")
    post.append(f"ip6 saddr {sub} ip6 daddr != {sub} masquerade")
    if any(f.guest_ip6 for f in net.forwards):  # guest -> forwarded port -> guest
        post.append(f'oifname "{br}" ip6 saddr {sub} ip6 daddr {sub} ct status dnat masquerade')


def forward_entries(net: Network, any_map: list[str], addr_map: list[str]) -> None:
    """The IPv6 port forwards of a nat6 network as map elements (config/forwards.py sets
    guest_ip6 only there)."""
    for f in net.forwards:
        if f.guest_ip6 is None:
            continue
        for offset in range(f.host_ports[1] - f.host_ports[0] + 1):
            element = f"{f.proto} . {f.host_ports[0] + offset} : {f.guest_ip6} . {f.guest_ports[0] + offset}"
            (any_map if f.host_addr is None else addr_map).append(
                element if f.host_addr is None else f"{f.host_addr} . {element}")


def eui64(mac: str, prefix: IPv6Network) -> IPv6Address:
    """The address SLAAC derives from a MAC in a /64 (RFC 4291 appendix A: ff:fe in the middle,
    the universal/local bit flipped); in fe80::/64 the link-local one."""
    octets = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return IPv6Address(int(prefix.network_address) | int.from_bytes(iid, "big"))


LINK_LOCAL = IPv6Network("fe80::/64")


def own_addresses(net: Network, nic: Nic) -> list[tuple[IPv6Address, IPv6Address]]:
    """What a spoof-protected guest may send from, as ranges: its EUI-64 link-local and SLAAC
    addresses (guests using privacy or stable-privacy addresses are not covered), its static
    ip6, else the DHCPv6 range it may lease from."""
    own = [(a, a) for a in fixed_addresses(net, nic)]
    if nic.ip6 is None and net.dhcp6 is not None:
        return own + [(net.dhcp6.start, net.dhcp6.end)]
    return own


def _as_addresses(ranges) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _as_integers(ranges) -> str:
    """The same, as 128-bit integers: the target of a neighbour advertisement is matched as raw
    payload (nft 1.0.6 has no `icmpv6 taddr`)."""
    return ", ".join(f"0x{int(a):032x}" if a == b else f"0x{int(a):032x}-0x{int(b):032x}" for a, b in ranges)


def claimed_rules(net: Network, nic: Nic, addresses: str, targets: str) -> list[str]:
    """A guest leasing from the DHCPv6 range may not send from, nor advertise itself as, what
    the range holds of other guests' (their static ip6, their SLAAC address; named sets, one per
    network: render/nft.py); its own SLAAC address may be in the set too, and stays its own."""
    own = [(a, a) for a in fixed_addresses(net, nic)]
    return [f'iifname "{nic.tap}" ether type ip6 ip6 saddr @{addresses} ip6 saddr != {{ {_as_addresses(own)} }} drop',
            f'iifname "{nic.tap}" icmpv6 type nd-neighbor-advert @th,64,128 @{targets} '
            f'@th,64,128 != {{ {_as_integers(own)} }} drop']


def fixed_addresses(net: Network, nic: Nic) -> list[IPv6Address]:
    """A guest's addresses that come from its MAC and config: EUI-64 link-local and SLAAC, static ip6."""
    own = [eui64(nic.mac, LINK_LOCAL)]
    if net.subnet6 is not None and net.subnet6.prefixlen == 64:
        own.append(eui64(nic.mac, net.subnet6))
    if nic.ip6 is not None:
        own.append(nic.ip6)
    return own


def antispoof_rules(net: Network, nic: Nic) -> list[str]:
    """The IPv6 half of a tap's spoof protection (render/nft.py has the MAC, IPv4 and ARP half).
    `::` is the source of duplicate address detection; a neighbour advertisement's target must
    be the guest's own (the IPv6 form of ARP poisoning); router advertisements and redirects
    from a guest would make it the others' router."""
    tap, own = nic.tap, own_addresses(net, nic)
    return [f'iifname "{tap}" ether type ip6 ip6 saddr != {{ ::, {_as_addresses(own)} }} drop',
            # the target address: 8 bytes into the ICMPv6 header
            f'iifname "{tap}" icmpv6 type nd-neighbor-advert @th,64,128 != {{ {_as_integers(own)} }} drop',
            f'iifname "{tap}" icmpv6 type {{ nd-router-advert, nd-redirect }} drop']
