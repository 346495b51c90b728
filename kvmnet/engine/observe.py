"""Read the host into an Observed value: links, addresses, routes, the sysctls the topology
cares about, kvmnet's own firewall objects and dnsmasq processes."""

from __future__ import annotations

import re

from .. import naming
from ..host import system
from ..model import ROUTING_MODES, Topology
from ..observed import Observed
from ..render.nft import needs_table
from .plan import bandwidth, dnsmasq as dnsmasq_plan, firewall as firewall_plan, firewalld as firewalld_plan, \
    overlay as overlay_plan, sysctls


def observe(topo: Topology, state_dir: str, backend: str = "nftables", host=None, known: dict | None = None,
            recorded_sysctls: tuple[str, ...] = (), host_forward: dict | None = None,
            since: Observed | None = None, ran: tuple = ()) -> Observed:
    """`known`: the record's last nft listing (Record.nft_seen), reused while it still holds.
    `recorded_sysctls`: sysctls the record holds, which a removal puts back: read them too, so
    that removal's own undo (for a rollback) knows the value it replaces. `host_forward`: the
    host's FORWARD chain as read before, when no step since could have changed it (an
    `iptables` process saved). `since`, `ran`: a verify, reading back what the steps `ran` did to
    the host observed as `since`: the links no step touched, and the forwarded ports' listeners
    (only the conflict check before planning reads them), are taken from `since`."""
    host = host or system.default()
    links = _links(host, since, ran)
    fw = {}
    if needs_table(topo):
        name = naming.iptables_prefix(topo.name) if backend == "iptables" else naming.nft_table(topo.name)
        fw = host.firewall(name, backend, any(n.spoof_protection for n in topo.networks), known or None)
        if fw.get("exists"):  # whose rules they are is judged against the record of this backend's fact
            fw = dict(fw, backend=backend)
    exe, user = host.dnsmasq_binary(), host.dnsmasq_user()
    procs = _dnsmasqs(topo, state_dir, host, user, since, ran)
    for net in topo.networks:
        if net.mode == "vde":
            paths = naming.vde_paths(state_dir, net.name)
            procs[f"vde:{net.name}"] = host.vde(paths["pid"], paths["ctl"])
    forwarding = any(n.mode in ROUTING_MODES + ("bridge", "isolated") for n in topo.networks)
    routes, addrs = host.routes(links), host.addrs(links)
    seen = {p: host.sysctl(p) for p in {*sysctls.paths(topo, routes), *recorded_sysctls}}
    return Observed(links=links, addrs=addrs, routes=routes, sysctls=seen, firewall=fw,
                    processes=procs, host_forward=_host_forward(topo, backend, host, host_forward, seen) if forwarding else {},
                    listeners=since.listeners if since is not None else _forward_listeners(topo, host, backend, fw),
                    dnsmasq_user=user, dnsmasq_exe=exe, firewalld=_firewalld(topo, host),
                    tc=_qdiscs(topo, host), qemu_acl=_qemu_acl(topo, host),
                    overlay=_overlay(topo, host, state_dir, links, addrs))


# a step's op -> its args naming the links whose attributes (a Link: mtu, master, mac, up, ...) it changes
_LINK_ARGS = {"bridge.add": ("name",), "tap.add": ("name", "master"), "link.set": ("name", "master"),
              "link.del": ("name",), "links.del_group": ("names",)}
_DELETES = ("link.del", "links.del_group")
# ops that change no link's attributes: addresses, routes, sysctls, rules, processes, zones, ACLs
# (not tc.: shaping a tap's ingress makes an ifb link)
_NO_LINK_OPS = ("addr.", "route.", "sysctl.", "firewall.", "fwaccept.", "dnsmasq.", "firewalld.", "qemuacl.")
VERIFY_LINKS_MAX = 64  # more than this: one dump costs less than a request per link


def touched_links(ran, links: dict) -> set[str] | None:
    """The links the steps `ran` may have changed (`links`: as observed before they ran): the
    ones they name, the bridges those left or joined (a bridge's MTU and MAC follow its ports),
    and the ports of a deleted bridge. None: all of them (another kind of step, or too many)."""
    named, deleted = set(), set()
    for step in ran:
        if step.op.startswith(_NO_LINK_OPS):
            continue
        if step.op not in _LINK_ARGS:
            return None
        for arg in _LINK_ARGS[step.op]:
            value = step.args.get(arg)
            names = list(value) if isinstance(value, (list, tuple)) else [value] if value else []
            named.update(names)
            if step.op in _DELETES:
                deleted.update(names)
    out = named | {links[n].master for n in named if n in links and links[n].master}
    if deleted:
        out |= {name for name, link in links.items() if link.master in deleted}
    return out if len(out) <= VERIFY_LINKS_MAX else None


def _links(host, since: Observed | None, ran) -> dict:
    touched = touched_links(ran, since.links) if since is not None else None
    if touched is None:
        return host.links()
    fresh = host.links_named(touched)
    kept = {name: fresh.get(name, link) for name, link in since.links.items() if name not in touched or name in fresh}
    new = sorted((link for name, link in fresh.items() if name not in kept), key=lambda link: link.index)
    return kept | {link.name: link for link in new}  # as a dump lists them: by index, the new ones last


def _firewalld(topo: Topology, host) -> dict:
    bridges = firewalld_plan.bridges(topo)
    return host.firewalld(bridges) if bridges else {}


def _qdiscs(topo: Topology, host) -> dict:
    devs = bandwidth.devices(topo)
    return host.qdiscs(devs) if devs else {}


def _qemu_acl(topo: Topology, host) -> dict:
    """qemu-bridge-helper's ACL as kvmnet keeps it, read only for topologies that use it."""
    if not any(n.allow_unprivileged for n in topo.networks):
        return {}
    conf_dir = host.qemu_conf_dir()
    return {"dir": conf_dir, "allowed": host.qemu_acl(conf_dir)}


def _overlay(topo: Topology, host, state_dir: str, links: dict, addrs: dict) -> dict:
    names = overlay_plan.names(topo)
    out = host.overlay(names) if names else {}
    if overlay_plan.evpn_peers(topo) is not None:
        out = dict(out, frr=host.frr(state_dir))
    held = {}  # a gateway this host is about to take on its segment, where someone else answers for it
    for net, gateway in overlay_plan.gateways_to_take(topo, links, addrs):
        mac = host.gateway_holder(net.bridge, str(gateway.ip))
        if mac:
            held[net.name] = mac
    return dict(out, gateway_held=held) if held else out


def _host_forward(topo: Topology, backend: str, host, known: dict | None, sysctls: dict) -> dict:
    """The host's FORWARD chain; its ip6tables twin only for a topology that may need accepts
    there (an `ip6tables` process saved otherwise)."""
    if known is not None:
        return known
    return host.host_forward(firewall_plan.may_need_ipv6_accepts(topo, backend, sysctls))


def _dnsmasqs(topo: Topology, state_dir: str, host, user: str, since: Observed | None, ran) -> dict:
    """"dnsmasq:NET" -> what host.dnsmasq saw, plus the group it runs with (it reads the
    reloadable files as that group). A verify reads back the instances its steps ran for (every
    dnsmasq step names its network: its files and process change only through those) and takes
    the others from `since` (16 networks: ~3 ms less)."""
    nets = dnsmasq_plan.networks(topo)
    group = host.dnsmasq_group(user) if nets else None
    ran_for = {s.args.get("network") for s in ran if s.op.startswith("dnsmasq.")}
    out = {}
    for net in nets:
        key = f"dnsmasq:{net.name}"
        if since is not None and net.name not in ran_for and key in since.processes:
            out[key] = since.processes[key]
            continue
        paths = naming.dnsmasq_paths(state_dir, net.name)
        out[key] = dict(host.dnsmasq(paths["conf"], paths["pid"]), group=group)
    return out


def _forward_listeners(topo: Topology, host, backend: str, fw: dict) -> dict[str, str]:
    """Sockets already bound on a port the topology forwards (DNAT would shadow them), except
    ports kvmnet's own table already forwards: a listener started after apply is no conflict
    (nor a reason to refuse repairing something else)."""
    forwards = [f for net in topo.networks if net.mode == "nat" for f in net.forwards]
    if not forwards:
        return {}
    bound = host.listening()
    single, ranges = _port_index(forwards)
    busy = sorted((proto, port) for proto, port in bound if port in single.get(proto, ())
                  or any(p == proto and low <= port <= high for p, low, high in ranges))
    if not busy:
        return {}
    owned = _forwarded_now(topo, host, backend, fw) if fw.get("exists") else set()
    return {f"{proto}/{port}": ", ".join(host.port_holders(port, proto))
            for proto, port in busy if (proto, port) not in owned}


def _port_index(forwards: list) -> tuple[dict, list]:
    """(proto -> the single host ports forwarded, [(proto, low, high)] of the ranges): a host has
    a few dozen bound ports to look up, a big topology 10,000 forwards."""
    single: dict[str, set] = {}
    ranges = []
    for f in forwards:
        low, high = f.host_ports
        if low == high:
            single.setdefault(f.proto, set()).add(low)
        else:
            ranges.append((f.proto, low, high))
    return single, ranges


_NFT_ELEMENT = r"\b(tcp|udp) \. (\d+)(?:-(\d+))? :"  # (compiled when a forwarded port has a listener)


def _forwarded_now(topo: Topology, host, backend: str, fw: dict) -> set[tuple[str, int]]:
    """(proto, port) that kvmnet's current table for this topology forwards (read only when a
    forwarded port has a listener)."""
    out = set()
    if backend == "iptables":
        tables = ((fw.get("saved") or {}).get("tables") or {}).values()
        for rules in (r for t in tables for r in t.get("chains", {}).values()):
            for argv in rules:
                if "DNAT" in argv and "--dport" in argv and "-p" in argv:
                    low, _, high = argv[argv.index("--dport") + 1].partition(":")
                    out |= {(argv[argv.index("-p") + 1], p) for p in range(int(low), int(high or low) + 1)}
        return out
    for m in re.finditer(_NFT_ELEMENT, host.firewall_listing(naming.nft_table(topo.name))):
        out |= {(m[1], p) for p in range(int(m[2]), int(m[3] or m[2]) + 1)}
    return out
