"""kvmnet's own iptables chains for one topology: the same behaviour as render/nft.py, as data.

Pure: no iptc here (kvmnet/host/iptables.py loads it). Each rule is a list of iptables arguments
in the canonical order `iptables-save` prints them (-s -d -i -o -p, matches, comment, -j), so
what kvmnet renders, what it loads and what `iptables-legacy-save` shows are the same text.

Chains (<prefix> = naming.iptables_prefix(topology), e.g. KN-natlab):
  <prefix>-GRD   raw PREROUTING    drop packets arriving on a bridge for 127.0.0.0/8 (networks
                                   with port forwards: their bridge has route_localnet on)
  <prefix>-ISO   filter FORWARD    (above every topology's FWD jump) anything from an isolated
                                   bridge to another interface rejected
  <prefix>-FWD   filter FORWARD    bridge to bridge; replies and DNATed connections into a nat
                                   subnet, anything into a routed one; anything else to a bridge
                                   rejected
  <prefix>-FWO   filter FORWARD    (below every topology's FWD jump) out of a nat or routed
                                   subnet; anything else from its bridge rejected
  <prefix>-INP   filter INPUT      DHCP, DNS (and TFTP) from the bridge
  <prefix>-PRE   nat PREROUTING    DNAT of forwarded ports on the host's own addresses
  <prefix>-OUT   nat OUTPUT        the same for connections the host itself makes
  <prefix>-POST  nat POSTROUTING   MASQUERADE (as nft: not multicast/broadcast, TCP/UDP source
                                   ports into 1024-65535), localhost forwards, hairpin
A chain exists only when it has rules. Each built-in chain gets one jump,
`-m comment --comment kvmnet -j <chain>`, inserted at the top (see host/iptables.py).

Every kvmnet rule carries `-m comment --comment "kvmnet <digest> <n>/<total>"`: <digest> names
the ruleset (sha256 of the rules without comments), <n> is the number of rules its chain
must hold and <total> the number of kvmnet rules in all chains. A listing alone then tells
whether the chains are intact (a flushed or deleted chain, a lost or added rule shows as a
count that no longer adds up) without knowing the topology.

Differences from the nftables table, none of them visible to guests:
  - a port forward is one DNAT rule per port (a map lookup in nft); an identical host and
    guest port range (9000-9002 -> 9000-9002) is one rule with --dport 9000:9002;
  - `meta l4proto { tcp, udp }` becomes one rule per protocol;
  - IPv6 (networks with subnet6) is a second set of chains of the same names in the ip6
    tables (render/iptables6.py), under the same digest and total: the ruleset is one;
  - no spoof_protection (nft's bridge-family chain has no python-iptables equivalent):
    render() refuses such a topology rather than apply it unprotected.
"""

from __future__ import annotations

import hashlib
import json
import re

from .. import naming
from ..errors import InputError
from ..valueclass import field, value
from ..model import Network, ROUTING_MODES, Topology, VIRTUAL_MODES
from .iptables6 import HOOKS6, TABLES6, bare_rules6, forward_ports6

# hook suffix -> (table, built-in chain), in the order chains are listed within a table
HOOKS = {
    "GRD": ("raw", "PREROUTING"),
    "ISO": ("filter", "FORWARD"),  # isolated networks refuse all they send elsewhere: above every kvmnet FWD
    "FWD": ("filter", "FORWARD"),  # cross-bridge accepts, then what may enter each network
    "FWO": ("filter", "FORWARD"),  # what may leave each network: jumped to below every kvmnet FWD
    "INP": ("filter", "INPUT"),
    "PRE": ("nat", "PREROUTING"),
    "OUT": ("nat", "OUTPUT"),
    "POST": ("nat", "POSTROUTING"),
}
TABLES = ("raw", "filter", "nat")  # apply order: guard and filter before any DNAT opens a port
JUMP_COMMENT = "kvmnet"
DNAT_ON_LOCAL = ["-m", "addrtype", "--dst-type", "LOCAL"]


FAMILY_TABLES = {4: TABLES, 6: TABLES6}
JSON_KEY = {4: "tables", 6: "tables6"}  # where each family's tables are in the JSON form
# the order of kvmnet's chains in FORWARD, whatever topology they are of: every isolated network's
# refusal, then every network's cross-bridge and inbound rules, then every outbound accept
FORWARD_RANK = {"ISO": 0, "FWD": 1, "FWO": 2}
KVMNET_FORWARD = re.compile(r"KN-.+-(ISO|FWD|FWO)")


def forward_rank(chain: str) -> int | None:
    """The rank of a kvmnet topology's chain that FORWARD jumps to, None for any other chain."""
    found = KVMNET_FORWARD.fullmatch(chain)
    return FORWARD_RANK[found.group(1)] if found else None


def chain_names(prefix: str, family: int = 4) -> dict[str, tuple[str, str, str]]:
    """Every chain kvmnet may own for `prefix` in one family's tables: name -> (hook, table, built-in chain)."""
    hooks = HOOKS if family == 4 else HOOKS6
    return {f"{prefix}-{hook}": (hook, table, builtin) for hook, (table, builtin) in hooks.items()}


def jump_rule(chain: str) -> list[str]:
    return ["-m", "comment", "--comment", JUMP_COMMENT, "-j", chain]


def rule_comment(argv: list[str]) -> str | None:
    """The value of a rule's --comment, or None."""
    for i, tok in enumerate(argv[:-1]):
        if tok == "--comment" and i > 0:
            return argv[i + 1]
    return None


def parse_comment(text: str | None) -> tuple[str, int, int] | None:
    """"kvmnet <digest> <n>/<total>" -> (digest, n, total); None if it is not kvmnet's."""
    if not text:
        return None
    words = text.split()
    if len(words) != 3 or words[0] != "kvmnet" or len(words[1]) != 12 or "/" not in words[2]:
        return None
    n, _, total = words[2].partition("/")
    if not (n.isdigit() and total.isdigit()):
        return None
    try:
        int(words[1], 16)
    except ValueError:
        return None
    return words[1], int(n), int(total)


def _with_comment(argv: list[str], comment: str) -> list[str]:
    """Insert the comment match before the target, where iptables-save prints it."""
    for i, tok in enumerate(argv):
        if tok in ("-j", "-g"):
            return argv[:i] + ["-m", "comment", "--comment", comment] + argv[i:]
    return argv + ["-m", "comment", "--comment", comment]


def _ports(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}:{hi}"


def _cidr(value) -> str:
    text = str(value)
    return text if "/" in text else text + "/32"


def _dnat_rules(net: Network):
    """(any-address rules, host_addr rules) for one network's forwards."""
    anyaddr, byaddr = [], []
    for f in net.forwards:
        if f.guest_ip is None or f.host_addr is not None and f.host_addr.version != 4:
            continue  # IPv6 only: render/iptables6.py
        (hlo, hhi), (glo, ghi) = f.host_ports, f.guest_ports
        if (hlo, hhi) == (glo, ghi) and hlo != hhi:
            # 1:1 identical range: DNAT keeps the destination port when it is in the range
            pieces = [(hlo, hhi, f"{f.guest_ip}:{glo}-{ghi}")]
        else:
            pieces = [(hlo + i, hlo + i, f"{f.guest_ip}:{glo + i}") for i in range(hhi - hlo + 1)]
        for lo, hi, dest in pieces:
            match = ["-p", f.proto, "-m", f.proto, "--dport", _ports(lo, hi)]
            target = ["-j", "DNAT", "--to-destination", dest]
            if f.host_addr is None:
                anyaddr.append(match + DNAT_ON_LOCAL + target)
            else:
                byaddr.append(["-d", _cidr(f.host_addr)] + match + target)
    return anyaddr, byaddr


def _forward_ports(topo: Topology) -> int:
    return sum(f.host_ports[1] - f.host_ports[0] + 1 for n in topo.networks if n.mode == "nat" and n.subnet
               for f in n.forwards if f.guest_ip is not None and (f.host_addr is None or f.host_addr.version == 4))


REJECT = ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"]


def _cross(net: Network) -> list[list[str]]:
    return [["-i", net.bridge, "-o", net.bridge, "-j", "ACCEPT"]]


def _isolated(net: Network) -> list[list[str]]:
    """As render/nft.py's: an isolated network's refusal before any network's inbound accept, of
    any topology (its own chain, jumped to above every FWD chain's jump)."""
    return [["-i", net.bridge, "!", "-o", net.bridge, *REJECT]] if net.mode == "isolated" else []


def _inbound(net: Network) -> list[list[str]]:
    """As render/nft.py's: replies and DNATed connections (nat), the routed subnet; else refused."""
    br, sub = net.bridge, str(net.subnet) if net.subnet is not None else None
    rules = []
    if net.mode == "nat" and sub is not None:
        rules.append(["-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"])
        rules.append(["-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"])
    elif net.mode == "routed" and sub is not None:
        rules.append(["-d", sub, "-o", br, "-j", "ACCEPT"])
    return rules + [["-o", br, *REJECT]]


def _outbound(net: Network) -> list[list[str]]:
    if net.mode not in ROUTING_MODES:
        return []  # (isolated: refused in FWD, _isolated)
    rules = [["-s", str(net.subnet), "-i", net.bridge, "-j", "ACCEPT"]] if net.subnet is not None else []
    return rules + [["-i", net.bridge, *REJECT]]


def bare_rules(topo: Topology) -> dict[str, list[list[str]]]:
    """hook -> rules without comments, in nft's order (render/nft.py is the reference)."""
    chains: dict[str, list[list[str]]] = {hook: [] for hook in HOOKS}
    anyaddr, byaddr = [], []
    for net in topo.networks:
        if net.mode not in VIRTUAL_MODES:
            continue
        br, sub = net.bridge, str(net.subnet) if net.subnet is not None else None
        inp = chains["INP"]
        if net.gateway is not None:  # the gateway's services answer on the bridge only (and the host: lo)
            for proto in ("udp", "tcp"):  # (the host's own DNS queries: dnsmasq's to answer)
                inp.append(["-d", f"{net.gateway}/32", "-i", "lo", "-p", proto, "-m", proto, "--dport", "53", "-j", "RETURN"])
            for proto, port in (("udp", "53"), ("tcp", "53"), ("udp", "67"), ("udp", "69")):
                inp.append(["-d", f"{net.gateway}/32", "!", "-i", br, "-p", proto, "-m", proto, "--dport", port, "-j", "DROP"])
        inp.append(["-i", br, "-p", "udp", "-m", "udp", "--dport", "67", "-j", "ACCEPT"])
        inp.append(["-i", br, "-p", "tcp", "-m", "tcp", "--dport", "53", "-j", "ACCEPT"])
        inp.append(["-i", br, "-p", "udp", "-m", "udp", "--dport", "53", "-j", "ACCEPT"])
        if net.tftp_root:
            inp.append(["-i", br, "-p", "udp", "-m", "udp", "--dport", "69", "-j", "ACCEPT"])
        if net.mode != "nat" or sub is None:
            continue
        post = chains["POST"]
        post.append(["-s", sub, "-d", "224.0.0.0/24", "-j", "RETURN"])
        post.append(["-s", sub, "-d", "255.255.255.255/32", "-j", "RETURN"])
        for proto in ("tcp", "udp"):
            post.append(["-s", sub, "!", "-d", sub, "-p", proto, "-j", "MASQUERADE", "--to-ports", "1024-65535"])
        post.append(["-s", sub, "!", "-d", sub, "-j", "MASQUERADE"])
        if net.forwards:
            post.append(["-s", "127.0.0.0/8", "-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "DNAT",
                         "-j", "MASQUERADE"])
            post.append(["-s", sub, "-d", sub, "-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"])
            chains["GRD"].append(["-d", "127.0.0.0/8", "-i", br, "-j", "DROP"])
        a, b = _dnat_rules(net)
        anyaddr += a
        byaddr += b
    virtual = [n for n in topo.networks if n.mode in VIRTUAL_MODES]
    chains["ISO"] = [r for net in virtual for r in _isolated(net)]
    chains["FWD"] = [r for part in (_cross, _inbound) for net in virtual for r in part(net)]
    chains["FWO"] = [r for net in virtual for r in _outbound(net)]
    # as in nft: the any-address lookup first, then the per-address one (config forbids overlaps)
    for hook in ("PRE", "OUT"):
        chains[hook] = anyaddr + byaddr
    return {hook: rules for hook, rules in chains.items() if rules}


@value
class IptRuleset:
    name: str  # the chain prefix, KN-<topology>
    digest: str
    chains: dict = field(default_factory=dict)  # chain name -> rules (argv lists, with comments)
    jumps: dict = field(default_factory=dict)  # chain name -> jump rule argv (its built-in chain: HOOKS)
    forwards: int = 0
    chains6: dict = field(default_factory=dict)  # the same for the ip6 tables (HOOKS6)
    jumps6: dict = field(default_factory=dict)

    @property
    def rules(self) -> int:
        return sum(len(r) for r in self.chains.values()) + sum(len(r) for r in self.chains6.values())

    @property
    def summary(self) -> str:
        ip6 = f" (ip6: {sum(len(r) for r in self.chains6.values())})" if self.chains6 else ""
        return f"chains {self.name}-*, {self.rules} rules{ip6}, {self.forwards} forwards"

    def tables(self, family: int = 4) -> dict[str, dict]:
        """table -> {"chains": {name: rules}, "jumps": {chain: argv}}, tables with chains only."""
        owned = chain_names(self.name, family)
        mine, jumps = (self.chains, self.jumps) if family == 4 else (self.chains6, self.jumps6)
        out: dict[str, dict] = {}
        for table in FAMILY_TABLES[family]:
            chains = {c: r for c, r in mine.items() if owned.get(c, (None, None, None))[1] == table}
            if chains:
                out[table] = {"chains": chains, "jumps": {c: jumps[c] for c in chains if c in jumps}}
        return out

    def to_json(self) -> dict:
        data = {"format": "kvmnet-iptables/2", "name": self.name, "digest": self.digest,
                "forwards": self.forwards, "tables": self.tables()}
        if self.chains6:  # absent for IPv4-only topologies: their JSON is what it always was
            data["tables6"] = self.tables(6)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "IptRuleset":
        found = {}
        for family, key in JSON_KEY.items():
            chains, jumps = {}, {}
            owned = chain_names(data["name"], family)
            for table, body in (data.get(key) or {}).items():
                for name, rules in body.get("chains", {}).items():
                    chains[name] = [list(r) for r in rules]
                for jkey, argv in body.get("jumps", {}).items():
                    target = argv[-1] if argv else None  # format 1 keyed jumps by built-in chain
                    if target in owned and owned[target][1] == table and jkey in (target, owned[target][2]):
                        jumps[target] = list(argv)
            found[family] = chains, jumps
        return cls(data["name"], data.get("digest") or "", *found[4], data.get("forwards", 0), *found[6])

    def text(self) -> str:
        """`iptables-legacy-restore --noflush` input with the same effect (display, golden files),
        then `ip6tables-legacy-restore --noflush` input for the ip6 chains, if any."""
        out = []
        for family in (4, 6) if self.chains6 else (4,):
            if family == 6:
                out.append("# ip6tables")
            for table, body in self.tables(family).items():
                out.append(f"*{table}")
                out += [f":{c} - [0:0]" for c in body["chains"]]
                # reversed: inserting each at 1 leaves FWD above FWO, as the writer places them
                for chain, argv in reversed(body["jumps"].items()):
                    out.append(f"-I {chain_names(self.name, family)[chain][2]} 1 {save_args(argv)}")
                for chain, rules in body["chains"].items():
                    out += [f"-A {chain} {save_args(r)}" for r in rules]
                out.append("COMMIT")
        return "\n".join(out) + "\n"


def save_args(argv: list[str]) -> str:
    """argv as iptables-save prints it: --comment values quoted as xtables_save_string does."""
    words = []
    for i, tok in enumerate(argv):
        if i > 0 and argv[i - 1] == "--comment" and not (tok and all(c.isascii() and (c.isalnum() or c in "-_") for c in tok)):
            words.append('"' + "".join("\\" + c if c in "\"\\'" else c for c in tok) + '"')
        else:
            words.append(tok)
    return " ".join(words)


def _refuse_spoof_protection(topo: Topology) -> None:
    spoofed = [nic.network for g in topo.guests for nic in g.nics  # render/nft.py's condition
               if nic.tap and topo.network(nic.network).spoof_protection and topo.network(nic.network).subnet]
    if spoofed:
        # nft does this in a bridge-family chain; python-iptables cannot write ebtables, and
        # silently applying the topology without its protection would be worse than refusing
        raise InputError(f"{topo.path}: network {spoofed[0]!r} has spoof_protection = true, which needs the "
                         "nftables backend (bridge-level rules); the iptables backend cannot provide it: "
                         "use --firewall nftables or drop spoof_protection")


def _commented(prefix: str, family: int, bare: dict, digest: str, total: int) -> dict:
    """chain name -> rules with their "kvmnet <digest> <n>/<total>" comments, in table order."""
    chains = {f"{prefix}-{hook}": [_with_comment(r, f"kvmnet {digest} {len(rules)}/{total}") for r in rules]
              for hook, rules in bare.items()}
    return {c: chains[c] for t in FAMILY_TABLES[family] for c, (_, table, _) in chain_names(prefix, family).items()
            if table == t and c in chains}


def render(topo: Topology) -> IptRuleset:
    _refuse_spoof_protection(topo)
    prefix = naming.iptables_prefix(topo.name)
    bare, bare6 = bare_rules(topo), bare_rules6(topo)
    # one ruleset: the ip6 chains share the digest and the total (an IPv4-only topology hashes
    # exactly what it did before IPv6 existed)
    hashed = {**bare, **{f"6:{hook}": rules for hook, rules in bare6.items()}}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]
    total = sum(len(r) for r in hashed.values())
    chains, chains6 = _commented(prefix, 4, bare, digest, total), _commented(prefix, 6, bare6, digest, total)
    return IptRuleset(prefix, digest, chains, {c: jump_rule(c) for c in chains},
                      _forward_ports(topo) + forward_ports6(topo), chains6, {c: jump_rule(c) for c in chains6})
