"""kvmnet's own nftables table for one topology, as text for one atomic `nft -f -` batch.

Layout (compare libvirt's network_nftables.c and CNI's portmap):
  prerouting/output (nat, dstnat): DNAT of the host's own addresses through a map
      (protocol . port -> guest . port), so N port forwards are one rule and one lookup.
  postrouting (nat, srcnat): MASQUERADE of each NAT subnet going elsewhere (not to multicast
      or broadcast; TCP/UDP source ports mapped into 1024-65535), of host-local sources DNATed
      to a guest (127.0.0.1:PORT on the host), and of hairpin traffic (guest -> forwarded port
      -> guest).
  forward (filter), in libvirt's order over all networks: bridge to bridge (guest_cross),
      then into each network (replies, DNATed connections, a routed subnet; else rejected:
      guest_input), then out of each (its subnet; else rejected: guest_output). So a guest
      of one network never opens a connection into another.
  input (filter): DHCP, DNS (and TFTP) from the bridge; the same ports on the gateway
      address from anywhere else are dropped.
  guard (filter, raw prerouting): drop packets arriving on a bridge for 127.0.0.0/8, so the
      route_localnet that 127.0.0.1 forwards need never exposes the host's loopback.
  table bridge kvmnet_<topology>, chain antispoof (only with spoof_protection = true): frames
      from a guest's tap must carry its MAC, and its static IP (or 0.0.0.0 while it asks for
      a lease, or an address in the subnet if it has no static one), in IP and ARP alike, as
      libvirt's clean-traffic filter does. A bridge-family chain is needed: guest-to-guest
      frames never reach the inet hooks.
All chains have policy accept: a kvmnet chain never decides the fate of others' traffic.
Every rule carries the comment "kvmnet <hash>" so drift (a flushed chain, an edited rule,
an older ruleset) is one listing and a compare away.
"""

from __future__ import annotations

import hashlib

from ..valueclass import value
from ..model import Network, ROUTING_MODES, Topology, VIRTUAL_MODES
from . import nft6


@value
class Ruleset:
    table: str
    text: str  # the full batch: create-or-replace of the table
    digest: str
    rules: dict  # chain -> number of rules
    elements: dict  # map -> number of elements
    maps: dict = None  # map -> its elements, as the text above writes them (element deltas)

    @property
    def summary(self) -> str:
        return f"table inet {self.table}, {sum(self.rules.values())} rules, {sum(self.elements.values())} forwards"


def needs_table(topo: Topology) -> bool:
    return any(n.mode in VIRTUAL_MODES for n in topo.networks)


HOOKS = {"guard": "type filter hook prerouting priority raw",
         "prerouting": "type nat hook prerouting priority dstnat",
         "output": "type nat hook output priority -100",
         "postrouting": "type nat hook postrouting priority srcnat",
         "forward": "type filter hook forward priority filter",
         "input": "type filter hook input priority filter"}


def render(topo: Topology, table: str) -> Ruleset:
    chains: dict[str, list[str]] = {name: [] for name in HOOKS}
    any_map, addr_map, any6, addr6 = [], [], [], []
    virtual = [n for n in topo.networks if n.mode in VIRTUAL_MODES]
    # libvirt's order (guest_cross, guest_input, guest_output): every network's cross-bridge
    # accept, then what may enter each network, then what may leave it; so no network's
    # outbound accept can let a guest into another network before that network's reject.
    # Ahead of libvirt, an isolated network's refusal comes before every inbound accept: in
    # libvirt's order a routed subnet's accept (or here a forwarded port's DNAT accept) takes
    # an isolated guest's packets one way first.
    for part in (_cross, _isolated, _inbound, _outbound):
        for net in virtual:
            chains["forward"] += part(net)
    for net in virtual:
        _service_rules(net, chains)
        nft6.service_rules(net, chains)
        _forward_entries(net, any_map, addr_map)
        nft6.forward_entries(net, any6, addr6)
    maps = _maps(chains, any_map, addr_map)
    maps.update(_maps(chains, any6, addr6, family=6))
    return _assemble(table, chains, maps, *_antispoof(topo))


def _cross(net: Network) -> list[str]:
    """Guests of one network talk to each other (bridged frames pass forward under br_netfilter)."""
    return [f'iifname "{net.bridge}" oifname "{net.bridge}" accept']


def _isolated(net: Network) -> list[str]:
    """Nothing leaves an isolated network but to its own bridge."""
    return [f'iifname "{net.bridge}" reject with icmpx type admin-prohibited'] if net.mode == "isolated" else []


def _inbound(net: Network) -> list[str]:
    """Into the network: replies (nat), forwarded ports (nat), its routed subnet (routed); the
    rest is refused, from the outside and from every other network alike."""
    br, sub = net.bridge, net.subnet
    rules = []
    if net.mode == "nat" and sub is not None:
        rules.append(f'oifname "{br}" ip daddr {sub} ct state established,related accept')
        rules.append(f'oifname "{br}" ip daddr {sub} ct status dnat accept')
    elif net.mode == "routed" and sub is not None:
        rules.append(f'oifname "{br}" ip daddr {sub} accept')
    return rules + nft6.inbound(net) + [f'oifname "{br}" reject with icmpx type admin-prohibited']


def _outbound(net: Network) -> list[str]:
    """Out of the network: its own subnet's traffic on nat and routed networks, nothing else
    (an isolated network's refusal came first: _isolated)."""
    if net.mode not in ROUTING_MODES:
        return []
    rules = [f'iifname "{net.bridge}" ip saddr {net.subnet} accept'] if net.subnet is not None else []
    return rules + nft6.outbound(net) + [f'iifname "{net.bridge}" reject with icmpx type admin-prohibited']


def _service_rules(net: Network, chains: dict[str, list[str]]) -> None:
    """DHCP, DNS (and TFTP) on the bridge; masquerade and the loopback guard on nat networks."""
    br, sub = net.bridge, net.subnet
    inp = chains["input"]
    if net.gateway is not None:
        # dnsmasq answers on the bridge only; this holds even if it were misconfigured: the
        # gateway's services are not an open resolver for whatever else routes to the address.
        # The host's own DNS queries (on lo) are dnsmasq's to answer, as under libvirt.
        inp.append(f'iifname != {{ "{br}", "lo" }} ip daddr {net.gateway} meta l4proto {{ tcp, udp }} th dport 53 drop')
        inp.append(f'iifname != "{br}" ip daddr {net.gateway} meta l4proto {{ tcp, udp }} th dport {{ 67, 69 }} drop')
    inp.append(f'iifname "{br}" udp dport 67 accept')
    inp.append(f'iifname "{br}" meta l4proto {{ tcp, udp }} th dport 53 accept')
    if net.tftp_root:
        inp.append(f'iifname "{br}" udp dport 69 accept')
    if net.mode != "nat" or sub is None:
        return
    post = chains["postrouting"]
    post.append(f"ip saddr {sub} ip daddr 224.0.0.0/24 return")
    post.append(f"ip saddr {sub} ip daddr 255.255.255.255 return")
    post.append(f"meta l4proto {{ tcp, udp }} ip saddr {sub} ip daddr != {sub} masquerade to :1024-65535")
    post.append(f"ip saddr {sub} ip daddr != {sub} masquerade")
    if net.forwards:
        post.append(f'oifname "{br}" ip saddr 127.0.0.0/8 ip daddr {sub} ct status dnat masquerade')
        post.append(f'oifname "{br}" ip saddr {sub} ip daddr {sub} ct status dnat masquerade')
        chains["guard"].append(f'iifname "{br}" ip daddr 127.0.0.0/8 drop')


def _forward_entries(net: Network, any_map: list[str], addr_map: list[str]) -> None:
    """Port forwards as map elements: on any local address, or on one host address."""
    if net.mode != "nat" or net.subnet is None:
        return
    texts: dict = {}  # a guest's address as text, made once for its ~10 forwards (str() is slow)
    for f in net.forwards:
        gip, haddr = f.guest_ip, f.host_addr
        if gip is None or haddr is not None and haddr.version != 4:
            continue  # IPv6 only: nft6.forward_entries
        ip = texts.get(int(gip))
        if ip is None:
            ip = texts[int(gip)] = str(gip)
        low, high = f.host_ports
        if low == high and haddr is None:  # the common forward: one port, any host address
            any_map.append(f"{f.proto} . {low} : {ip} . {f.guest_ports[0]}")
            continue
        for offset in range(high - low + 1):
            if haddr is None:
                any_map.append(f"{f.proto} . {low + offset} : {ip} . {f.guest_ports[0] + offset}")
            else:
                addr_map.append(f"{haddr} . {f.proto} . {low + offset} : {ip} . {f.guest_ports[0] + offset}")


def _maps(chains: dict[str, list[str]], any_map: list[str], addr_map: list[str], family: int = 4) -> dict:
    """The DNAT maps of one family, each with the one rule per nat chain that looks it up
    (`dnat ip to` only ever matches IPv4 packets, `dnat ip6 to` IPv6 ones)."""
    maps = {}
    ip, addr, suffix = ("ip", "ipv4_addr", "") if family == 4 else ("ip6", "ipv6_addr", "6")
    if any_map:
        maps[f"fwd{suffix}_any"] = (f"inet_proto . inet_service : {addr} . inet_service", any_map)
        for chain in ("prerouting", "output"):
            chains[chain].append(f"fib daddr type local dnat {ip} to meta l4proto . th dport map @fwd{suffix}_any")
    if addr_map:
        maps[f"fwd{suffix}_addr"] = (f"{addr} . inet_proto . inet_service : {addr} . inet_service", addr_map)
        for chain in ("prerouting", "output"):
            chains[chain].append(f"dnat {ip} to {ip} daddr . meta l4proto . th dport map @fwd{suffix}_addr")
    return maps


def _assemble(table: str, chains: dict[str, list[str]], maps: dict, antispoof: list[str],
              claimed: dict[str, tuple[str, list[str]]]) -> Ruleset:
    """The batch text: delete both tables, then the inet table (and the bridge table if any)."""
    body = []
    for name, (kind, elems) in maps.items():
        body.append(f"\tmap {name} {{\n\t\ttype {kind}\n\t\telements = {{\n"
                    + ",\n".join(f"\t\t\t{e}" for e in elems) + "\n\t\t}\n\t}")
    # the comment digest names the rules and the maps' types, not the maps' elements: adding or
    # removing a forward changes no rule, so it can be an element delta (delta_text) that
    # leaves every rule, and its comment, as it is
    shape = repr([(name, kind) for name, (kind, _) in maps.items()])
    unhashed = shape + repr(sorted(chains.items())) + repr(antispoof) + repr(claimed)
    digest = hashlib.sha256(unhashed.encode()).hexdigest()[:12]
    for name, rules in chains.items():
        if not rules:
            continue
        lines = [f"\t\t{HOOKS[name]}; policy accept;"]
        lines += [f'\t\t{r} comment "kvmnet {digest}"' for r in rules]
        body.append(f"\tchain {name} {{\n" + "\n".join(lines) + "\n\t}")
    # both of kvmnet's tables are replaced in the batch, so turning spoof_protection off also
    # removes the bridge table (observe only lists it for topologies that use it)
    text = (delete_text(table) + f"table inet {table} {{\n" + "\n".join(body) + "\n}\n")
    rules = {k: len(v) for k, v in chains.items() if v}
    if antispoof:
        lines = "\n".join(f'\t\t{r} comment "kvmnet {digest}"' for r in antispoof)
        sets = "".join(f"\tset {name} {{\n\t\t{kind}\n\t\telements = {{\n"
                       + ",\n".join(f"\t\t\t{a}" for a in addrs) + "\n\t\t}\n\t}\n"
                       for name, (kind, addrs) in claimed.items())
        text += (f"table bridge {table} {{\n{sets}"
                 f"\tchain antispoof {{\n\t\ttype filter hook prerouting priority -200; policy accept;\n{lines}\n\t}}\n}}\n")
        rules["bridge:antispoof"] = len(antispoof)
    return Ruleset(table, text, digest, rules, {k: len(v[1]) for k, v in maps.items()},
                   {k: v[1] for k, v in maps.items()})


def _antispoof(topo: Topology) -> tuple[list[str], dict[str, tuple[str, list[str]]]]:
    """(the bridge table's antispoof rules, its named sets {name: (type, elements)}). A guest
    without a static address may use any of the subnet (any of the DHCPv6 range) but not what
    the network gives others: one named set of those per network and family, so that the rules
    stay linear in the number of guests."""
    rules: list[str] = []
    sets: dict[str, tuple[str, list[str]]] = {}
    claimed = _claimed_addresses(topo)
    for guest in topo.guests:
        for nic in guest.nics:
            net = topo.network(nic.network)
            if not (net.spoof_protection and nic.tap and net.subnet):
                continue
            tap, idx = nic.tap, topo.networks.index(net)
            allowed = f"{{ 0.0.0.0, {nic.ip} }}" if nic.ip else f"{{ 0.0.0.0, {net.subnet} }}"
            rules.append(f'iifname "{tap}" ether saddr != {nic.mac} drop')
            v4 = claimed[net.name][0]
            if nic.ip is None and v4:
                # the gateway's or another guest's static address: its ARP would take their traffic
                sets[f"claimed{idx}"] = ("type ipv4_addr", v4)
                rules.append(f'iifname "{tap}" ether type ip ip saddr @claimed{idx} drop')
                rules.append(f'iifname "{tap}" ether type arp arp saddr ip @claimed{idx} drop')
            rules.append(f'iifname "{tap}" ether type ip ip saddr != {allowed} drop')
            rules.append(f'iifname "{tap}" ether type arp arp saddr ether != {nic.mac} drop')
            rules.append(f'iifname "{tap}" ether type arp arp saddr ip != {allowed} drop')
            v6 = claimed[net.name][1]
            if nic.ip6 is None and net.dhcp6 is not None and v6:
                sets[f"claimed6_{idx}"] = ("type ipv6_addr", [str(a) for a in v6])
                sets[f"claimed6na_{idx}"] = ("typeof @th,64,128", [f"0x{int(a):032x}" for a in v6])
                rules += nft6.claimed_rules(net, nic, f"claimed6_{idx}", f"claimed6na_{idx}")
            rules += nft6.antispoof_rules(net, nic)
    return rules, sets


def _claimed_addresses(topo: Topology) -> dict[str, tuple[list[str], list]]:
    """Spoof-protected network -> (its gateway and every static guest address on it; what its
    DHCPv6 range holds of its guests' fixed IPv6 addresses, static or SLAAC (config keeps
    gateway6 out of it)), each in order, once."""
    out: dict[str, tuple[list[str], list]] = {}
    for net in topo.networks:
        if net.spoof_protection and net.subnet is not None:
            out[net.name] = ([str(net.gateway)] if net.gateway is not None else [], [])
    for guest in topo.guests:
        for nic in guest.nics:
            if nic.network not in out:
                continue
            v4, v6 = out[nic.network]
            if nic.ip is not None and str(nic.ip) not in v4:
                v4.append(str(nic.ip))
            net = topo.network(nic.network)
            if net.dhcp6 is not None:
                v6 += [a for a in nft6.fixed_addresses(net, nic) if net.dhcp6.start <= a <= net.dhcp6.end and a not in v6]
    return out


def delete_text(table: str) -> str:
    """Idempotent removal (create-if-missing, then delete) of both of kvmnet's tables, in one
    transaction."""
    return "".join(f"table {family} {table} {{}}\ndelete table {family} {table}\n" for family in ("inet", "bridge"))


MAP_NAMES = ("fwd_any", "fwd_addr", "fwd6_any", "fwd6_addr")  # every map render() may write


def delta_lines(table: str, delete: dict, add: dict) -> list[str]:
    """One nft command per map and direction: the deletes first, so a forward whose guest
    changed (same key, new value) is deleted and re-added within the one transaction."""
    lines = []
    for verb, elements in (("delete", delete), ("add", add)):
        for name in MAP_NAMES:
            if elements.get(name):
                lines.append(f"{verb} element inet {table} {name} {{ {', '.join(elements[name])} }}")
    return lines


def elements_digest(elements) -> str:
    """One map's elements, in any order, as one digest: of the text render() writes them in, or
    host/nftables.py reads back from a listing (so a listing can be compared with what kvmnet
    loaded, and what an element delta leaves be computed without one)."""
    return hashlib.sha256("\n".join(sorted(elements)).encode()).hexdigest()


def delta_text(table: str, delete: dict, add: dict) -> str:
    """The element delta as one `nft -f -` batch: atomic, as the table replace is."""
    return "".join(line + "\n" for line in delta_lines(table, delete, add))
