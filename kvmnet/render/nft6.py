"""The IPv6 rules of kvmnet's inet table (render/nft.py places them): the same model as IPv4.

Forward: into a network, a routed prefix (routed networks, and nat networks without nat6, as
libvirt routes IPv6 by default) or replies and forwarded ports (nat6); out of it, its prefix.
Input: DHCPv6, DNS, router and neighbour solicitations from the bridge; the gateway6's DHCPv6
and DNS ports dropped from anywhere else. Postrouting (nat6): masquerade of the prefix going
elsewhere, except link-scope multicast (ff02::/16), as libvirt does, and of hairpin traffic.
Port forwards (nat6 only: a routed prefix has nothing to translate): map elements, as IPv4's."""

from __future__ import annotations

from ..model import Network, ROUTING_MODES

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
    inp.append(f'iifname != "{br}" ip6 daddr {net.gateway6} meta l4proto {{ tcp, udp }} th dport {{ 53, 547 }} drop')
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
