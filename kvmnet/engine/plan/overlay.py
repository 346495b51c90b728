"""Facts about stretched networks on this host: the VXLAN device per VNI, a port of the network's
bridge, and with the static control plane one flooding entry per peer host. Pure.

The topology given is already this host's part (engine/overlay.py). A peer dropped from the file
leaves a recorded `fdb:` fact nobody wants: its recorded undo removes the entry.
"""

from __future__ import annotations

from ...model import Topology
from ...observed import address
from ...render import frr as frr_conf
from ..overlay import local_vxlans, vxlan_name
from ..steps import Step
from .facts import Facts
from .links import UNDO as LINK_UNDO

_PARAMS = ("vni", "local", "port", "learning")


def _undo_fdb(op: str):
    return lambda step, _: Step(op, dict(step.args))


UNDO = {"vxlan.add": lambda step, _: Step("link.del", {"name": step.args["name"]}),
        "fdb.add": _undo_fdb("fdb.del"), "fdb.del": _undo_fdb("fdb.add"),
        "frr.start": lambda step, _: Step("frr.stop", {"dir": step.args["dir"]})}


def names(topo: Topology) -> list[str]:
    """The VXLAN devices this host's part of `topo` has (what observe() reads)."""
    return [vxlan_name(vx.vni) for _, vx, _, _ in local_vxlans(topo)]


def vxlans(facts: Facts, topo: Topology) -> None:
    seen_all = facts.obs.overlay.get("vxlan", {})
    for net, vx, local, peers in local_vxlans(topo):
        name = vxlan_name(vx.vni)
        evpn = vx.control == "evpn"
        want = {"name": name, "vni": vx.vni, "local": local, "port": vx.port, "master": net.bridge,
                "mtu": net.mtu, "learning": False}
        if evpn:
            want["port_learning"] = False
        link, seen = facts.obs.links.get(name), seen_all.get(name)
        key, undo = f"link:{name}", Step("link.del", {"name": name})
        rebuilt = link is None or seen is None or any(seen.get(p) != want[p] for p in _PARAMS) \
            or (evpn and seen.get("port_learning") is not False)
        if link is None or seen is None:
            facts.want(key, Step("vxlan.add", want), undo)
        elif rebuilt:
            facts.want(key, Step("vxlan.add", dict(want, replace=True)), undo, "modify")
        else:
            drift = {k: v for k, v in (("master", net.bridge), ("mtu", net.mtu), ("up", True))
                     if getattr(link, k) != v}
            do = Step("link.set", {"name": name, **drift}) if drift else None
            facts.want(key, do, LINK_UNDO["link.set"](do, facts.obs) if do else None, "modify")
        if not evpn:
            _flooding(facts, name, peers, set() if rebuilt else set(facts.obs.overlay.get("fdb", {}).get(name, ())))


def _flooding(facts: Facts, name: str, peers: list[str], has: set[str]) -> None:
    for peer in peers:
        args = {"dev": name, "dst": peer}
        facts.want(f"fdb:{name}:{peer}", None if peer in has else Step("fdb.add", args), Step("fdb.del", args))


def evpn_peers(topo: Topology) -> tuple[str, list[str]] | None:
    """(this host's underlay, every host it shares an EVPN network with), or None without EVPN."""
    found = [(local, peers) for _, vx, local, peers in local_vxlans(topo) if vx.control == "evpn"]
    if not found:
        return None
    return found[0][0], sorted({p for _, peers in found for p in peers}, key=lambda a: tuple(map(int, a.split("."))))


def frr(facts: Facts, topo: Topology, topo_dir: str) -> None:
    """kvmnet's FRR (zebra + bgpd) for this topology's EVPN networks; a changed configuration
    (a host joined or left) restarts it."""
    found = evpn_peers(topo)
    if found is None:
        return
    local, peers = found
    p = frr_conf.paths(topo_dir)
    # the record keeps the parameters, not FRR's text: host/frr.py renders it when it starts
    want = {"dir": p["dir"], "host": topo.overlay.me, "listen": local, "peers": peers}
    texts = (frr_conf.zebra_conf(want["host"]), frr_conf.bgpd_conf(want["host"], local, peers))
    seen = facts.obs.overlay.get("frr", {})
    running = seen.get("zebra") and seen.get("bgpd")
    same = running and (seen.get("zebra_conf"), seen.get("bgpd_conf")) == texts
    undo = Step("frr.stop", {"dir": p["dir"]})
    facts.want(f"frr:{topo.name}", None if same else Step("frr.start", dict(want, restart=True) if running else want),
               undo, "modify" if running else "create")


def gateways_to_take(topo: Topology, links: dict, addrs: dict) -> list:
    """(network, its gateway interface) for each stretched network whose gateway this host is
    and whose bridge is up without the gateway address yet: the file's gateway_host moved here
    (or the address was deleted). What observe probes the segment for (host/arpprobe.py)."""
    out = []
    for net, _, _, _ in local_vxlans(topo):
        gateway, link = net.gateway_interface, links.get(net.bridge)
        if gateway is None or link is None or not link.up:
            continue
        if str(gateway) not in {address(a).cidr for a in addrs.get(net.bridge, ())}:
            out.append((net, gateway))
    return out


def conflicts(topo: Topology, observed, owned: set[str]) -> list[tuple[tuple, str]]:
    """A VXLAN device of the same VNI kvmnet did not make (the kernel allows one per VNI and
    port), EVPN where FRR is not installed, and a gateway another host still serves: refused
    before any change."""
    out = []
    for name, mac in sorted(observed.overlay.get("gateway_held", {}).items()):
        out.append((("networks", name, "gateway_host"),
                    f"{topo.network(name).gateway} is still answered on the stretched network by {mac}: the host that was its "
                    "gateway_host keeps the gateway (and its dnsmasq) until the file is applied there; apply it "
                    "on that host first, then here (or a guest uses that address)"))
    frr_missing = observed.overlay.get("frr", {}).get("available") is False
    others = observed.overlay.get("frr", {}).get("others") or []
    for net, vx, _, _ in local_vxlans(topo):
        name = vxlan_name(vx.vni)
        link = observed.links.get(name)
        if link is not None and f"link:{name}" not in owned:
            out.append((("networks", net.name, "vxlan", "vni"),
                        f"{name} already exists on this host ({link.kind or 'device'}) and kvmnet did not create it"))
        if vx.control == "evpn" and frr_missing:
            out.append((("networks", net.name, "vxlan", "control"),
                        "evpn needs FRR's zebra and bgpd (/usr/lib/frr): install Debian's `frr` package"))
        if vx.control == "evpn" and others:  # one EVPN instance per host: both would want TCP port 179
            out.append((("networks", net.name, "vxlan", "control"),
                        f"another bgpd runs in this network namespace: {', '.join(others)}; kvmnet runs one EVPN "
                        "instance per host: stretch these networks in the same topology file"))
    return out
