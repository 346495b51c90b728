"""kvmnet's ip6tables chains for one topology: render/nft6.py's IPv6 model as iptables argv. Pure.

Rendered only when some network has `subnet6` (an IPv4-only topology keeps no ip6 chains, as
before); then the forward chains cover every virtual network, as the nft inet table does: a
bridge without IPv6 gets its rejects too, so no IPv6 ever crosses into or out of it.

Chains, named as the IPv4 ones (render/iptables.py), in the ip6 tables:
  <prefix>-ISO   ip6 filter FORWARD   (above every FWD jump) from an isolated bridge to
                                      anything else rejected
  <prefix>-FWD   ip6 filter FORWARD   bridge to bridge; into each network its routed prefix
                                      (routed, and nat without nat6) or replies and DNATed
                                      connections (nat6); anything else to a bridge rejected
  <prefix>-FWO   ip6 filter FORWARD   out of each nat or routed network its prefix; the rest
                                      rejected
  <prefix>-INP   ip6 filter INPUT     DHCPv6, DNS, router and neighbour solicitations and
                                      neighbour advertisements from the bridge; the gateway6's
                                      DNS and DHCPv6 ports dropped from anywhere else
  <prefix>-PRE   ip6 nat PREROUTING   DNAT of IPv6 forwards to a guest's ip6 (nat6 only)
  <prefix>-OUT   ip6 nat OUTPUT       the same for connections the host makes
  <prefix>-POST  ip6 nat POSTROUTING  MASQUERADE of a nat6 prefix (not ff02::/16, as libvirt),
                                      and of hairpin traffic to a forwarded port
No raw guard: IPv6 has no route_localnet, so `::1` is never forwarded (config refuses it).
"""

from __future__ import annotations

from ..model import Network, ROUTING_MODES, Topology, VIRTUAL_MODES
from .nft6 import routes_prefix

HOOKS6 = {
    "ISO": ("filter", "FORWARD"),
    "FWD": ("filter", "FORWARD"),
    "FWO": ("filter", "FORWARD"),
    "INP": ("filter", "INPUT"),
    "PRE": ("nat", "PREROUTING"),
    "OUT": ("nat", "OUTPUT"),
    "POST": ("nat", "POSTROUTING"),
}
TABLES6 = ("filter", "nat")
REJECT6 = ["-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"]
# ip6tables-save's spelling: protocol 58 by its /etc/protocols name, ICMPv6 types as numbers
ND_TYPES = ("133", "135", "136")  # router solicitation, neighbour solicitation, advertisement
DNAT_ON_LOCAL = ["-m", "addrtype", "--dst-type", "LOCAL"]


def needs_chains(topo: Topology) -> bool:
    return any(n.subnet6 is not None and n.mode in VIRTUAL_MODES for n in topo.networks)


def _host(addr) -> str:
    return f"{addr}/128"


def _inbound(net: Network) -> list[list[str]]:
    br, sub = net.bridge, str(net.subnet6) if net.subnet6 is not None else None
    rules = []
    if sub is not None and net.mode in ROUTING_MODES:
        if routes_prefix(net):
            rules.append(["-d", sub, "-o", br, "-j", "ACCEPT"])
        else:
            rules.append(["-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"])
            rules.append(["-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"])
    return rules + [["-o", br, *REJECT6]]


def _outbound(net: Network) -> list[list[str]]:
    if net.mode not in ROUTING_MODES:
        return []  # (isolated: refused in FWD, before every inbound accept)
    rules = [["-s", str(net.subnet6), "-i", net.bridge, "-j", "ACCEPT"]] if net.subnet6 is not None else []
    return rules + [["-i", net.bridge, *REJECT6]]


def _input(net: Network) -> list[list[str]]:
    br = net.bridge
    rules = [["-d", _host(net.gateway6), "-i", "lo", "-p", proto, "-m", proto, "--dport", "53", "-j", "RETURN"]
             for proto in ("udp", "tcp")]  # the host's own DNS queries
    for proto, port in (("udp", "53"), ("tcp", "53"), ("udp", "547"), ("tcp", "547")):
        rules.append(["-d", _host(net.gateway6), "!", "-i", br, "-p", proto, "-m", proto, "--dport", port, "-j", "DROP"])
    for proto, port in (("udp", "547"), ("tcp", "53"), ("udp", "53")):
        rules.append(["-i", br, "-p", proto, "-m", proto, "--dport", port, "-j", "ACCEPT"])
    if net.tftp_root:
        rules.append(["-i", br, "-p", "udp", "-m", "udp", "--dport", "69", "-j", "ACCEPT"])
    for icmp_type in ND_TYPES:
        rules.append(["-i", br, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", icmp_type, "-j", "ACCEPT"])
    return rules


def _postrouting(net: Network) -> list[list[str]]:
    sub, br = str(net.subnet6), net.bridge
    rules = [["-s", sub, "-d", "ff02::/16", "-j", "RETURN"]]
    for proto in ("tcp", "udp"):
        rules.append(["-s", sub, "!", "-d", sub, "-p", proto, "-j", "MASQUERADE", "--to-ports", "1024-65535"])
    rules.append(["-s", sub, "!", "-d", sub, "-j", "MASQUERADE"])
    if any(f.guest_ip6 for f in net.forwards):  # guest -> forwarded port -> guest
        rules.append(["-s", sub, "-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"])
    return rules


def _dnat(net: Network) -> tuple[list, list]:
    """(any-address rules, host_addr rules) of a nat6 network's IPv6 forwards (config sets
    guest_ip6 only there); an IPv4 host_addr is an IPv4-only forward."""
    anyaddr, byaddr = [], []
    for f in net.forwards:
        if f.guest_ip6 is None or f.host_addr is not None and f.host_addr.version != 6:
            continue
        (hlo, hhi), (glo, ghi) = f.host_ports, f.guest_ports
        if (hlo, hhi) == (glo, ghi) and hlo != hhi:  # DNAT keeps a port that is inside the range
            pieces = [(f"{hlo}:{hhi}", f"[{f.guest_ip6}]:{glo}-{ghi}")]
        else:
            pieces = [(str(hlo + i), f"[{f.guest_ip6}]:{glo + i}") for i in range(hhi - hlo + 1)]
        for ports, dest in pieces:
            match = ["-p", f.proto, "-m", f.proto, "--dport", ports]
            target = ["-j", "DNAT", "--to-destination", dest]
            if f.host_addr is None:
                anyaddr.append(match + DNAT_ON_LOCAL + target)
            else:
                byaddr.append(["-d", _host(f.host_addr)] + match + target)
    return anyaddr, byaddr


def bare_rules6(topo: Topology) -> dict[str, list[list[str]]]:
    """hook -> ip6 rules without comments, in render/nft.py's order; {} without IPv6."""
    if not needs_chains(topo):
        return {}
    virtual = [n for n in topo.networks if n.mode in VIRTUAL_MODES]
    chains: dict[str, list[list[str]]] = {hook: [] for hook in HOOKS6}
    chains["FWD"] = [["-i", n.bridge, "-o", n.bridge, "-j", "ACCEPT"] for n in virtual]
    chains["ISO"] = [["-i", n.bridge, "!", "-o", n.bridge, *REJECT6] for n in virtual if n.mode not in ROUTING_MODES]
    chains["FWD"] += [r for n in virtual for r in _inbound(n)]
    chains["FWO"] = [r for n in virtual for r in _outbound(n)]
    anyaddr, byaddr = [], []
    for net in virtual:
        if net.subnet6 is None:
            continue
        chains["INP"] += _input(net)
        if net.mode == "nat" and net.nat6:
            chains["POST"] += _postrouting(net)
            a, b = _dnat(net)
            anyaddr += a
            byaddr += b
    for hook in ("PRE", "OUT"):
        chains[hook] = anyaddr + byaddr
    return {hook: rules for hook, rules in chains.items() if rules}


def forward_ports6(topo: Topology) -> int:
    return sum(f.host_ports[1] - f.host_ports[0] + 1 for n in topo.networks if n.mode == "nat" and n.nat6
               for f in n.forwards if f.guest_ip6 is not None and (f.host_addr is None or f.host_addr.version == 6))
