"""A stand-in record for `destroy --force`, when the real one is lost or corrupt.

It names only what kvmnet itself derives from the topology (its bridges, taps, firewall table
and dnsmasq instances, found by executable + exact `--conf-file=` argument even without a pid
file), never anything found by pattern-matching, so others' objects are safe. It observes
first and names only what is present, so destroy reports what it really removed. What cannot be
reconstructed (an uplink's original addresses and routes, sysctls' original values) is left
as it is; only the uplink's IPv6, which kvmnet turns off on a port of its bridge, comes back on.
"""

from __future__ import annotations

import os

from .. import naming
from ..errors import KvmnetError
from ..host import system
from ..model import Topology
from ..render import frr as frr_conf, nft
from ..render.dnsmasq import reload_paths
from . import overlay
from .plan import dnsmasq as dnsmasq_plan, overlay as overlay_plan, passt as passt_plan
from .plan.firewall import FAMILIES, delete_step, fwaccept_args, save_line
from ..render.host_forward import host_forward_accepts
from .record import Record
from .steps import Step


def forced_record(topo: Topology, state_root: str, backend: str = "nftables", host=None) -> Record:
    host = host or system.default()
    rec = Record(topo.name, topo.path)
    add = lambda key, step: rec.entries.append([key, step.to_json()])  # noqa: E731
    links = host.links()
    if topo.overlay is not None:  # this host's part of a multi-host file
        topo = overlay.decide(topo, links, host.addrs(links))
    for net in topo.networks:
        if net.bridged:
            uplink = links.get(net.uplink) if net.mode == "bridge" else None
            if uplink is not None and uplink.master == net.bridge:
                port_ipv6 = f"net/ipv6/conf/{net.uplink}/disable_ipv6"
                if host.sysctl(port_ipv6) == "1":  # (run last: once released, it solicits RAs)
                    add(f"sysctl:{port_ipv6}", Step("sysctl.set", {"path": port_ipv6, "value": "0"}))
                add(f"master:{net.uplink}", Step("link.set", {"name": net.uplink, "master": ""}))
            if net.bridge in links:
                add(f"link:{net.bridge}", Step("link.del", {"name": net.bridge}))
    for guest in topo.guests:
        for nic in guest.nics:
            if nic.tap and nic.tap in links:
                add(f"link:{nic.tap}", Step("link.del", {"name": nic.tap}))
    if nft.needs_table(topo):
        _firewall(topo, host, add)
    sdir = naming.state_dir_for(topo.name, state_root)
    for net in dnsmasq_plan.networks(topo):
        paths = naming.dnsmasq_paths(sdir, net.name)
        if host.dnsmasq(paths["conf"], paths["pid"]).get("pid") or _any_file(paths):
            add(dnsmasq_plan.key(topo.name, net.name), dnsmasq_plan.stop_step(net.name, paths))
    _switches_and_acl(topo, host, sdir, add)
    _forward_accepts(topo, host, add)
    _overlay(topo, host, links, sdir, add)
    _passts(topo, state_root, add)
    return rec


def _passts(topo: Topology, state_root: str, add) -> None:
    """Each guest NIC's passt directory that exists (a running passt's socket is in it): its
    recorded undo stops only a passt serving that socket. Added last: stopped first."""
    for guest in topo.guests:
        for i, nic in enumerate(guest.nics):
            directory = naming.passt_dir(topo.name, guest.name, i, state_root)
            if topo.network(nic.network).mode == "passt" and os.path.lexists(directory):
                add(passt_plan.key(guest.name, i), passt_plan.stop_step(guest.name, i, directory))


def _switches_and_acl(topo: Topology, host, sdir: str, add) -> None:
    """vde_switches (found by their control dir) and the helper ACL lines of this topology."""
    for net in topo.networks:
        if net.mode == "vde":
            paths = naming.vde_paths(sdir, net.name)
            if host.vde(paths["pid"], paths["ctl"]).get("pid") or any(os.path.lexists(p) for p in paths.values()):
                add(f"vde:{topo.name}:{net.name}", Step("vde.stop", {"network": net.name, "ctl": paths["ctl"],
                                                                     "pid_file": paths["pid"], "mgmt": paths["mgmt"]}))
        if net.bridged and net.allow_unprivileged:
            conf_dir = host.qemu_conf_dir()
            if host.qemu_acl(conf_dir).get(net.bridge) == topo.name:
                add(f"qemuacl:{net.bridge}", Step("qemuacl.del", {"conf_dir": conf_dir, "bridge": net.bridge,
                                                                  "topology": topo.name}))


def _forward_accepts(topo: Topology, host, add) -> None:
    """kvmnet's accepts for this topology's bridges in the host's FORWARD chains (Docker's DROP
    policy), as kvmnet renders them, comment and all: exactly those, in either family."""
    bridged = [n for n in topo.networks if n.bridged and n.bridge]
    if not bridged:
        return
    seen = host.host_forward(True)
    for family, _, rules, key in FAMILIES:
        for net in bridged:
            specs = [s for s in host_forward_accepts(net.bridge, topo.name).values() if save_line(s) in seen.get(rules, [])]
            if specs:
                add(f"{key}:{net.bridge}", Step("fwaccept.del", fwaccept_args(net.bridge, topo.name, specs, family)))


def _overlay(topo: Topology, host, links: dict, sdir: str, add) -> None:
    """The VXLAN devices of its VNIs, and its FRR instance (found by exe + its -f config)."""
    for name in overlay_plan.names(topo):
        if name in links:
            add(f"link:{name}", Step("link.del", {"name": name}))
    if overlay_plan.evpn_peers(topo) is not None:
        seen, frr_dir = host.frr(sdir), frr_conf.paths(sdir)["dir"]
        if seen.get("zebra") or seen.get("bgpd") or os.path.lexists(frr_dir):
            add(f"frr:{topo.name}", Step("frr.stop", {"dir": frr_dir}))


def _firewall(topo: Topology, host, add) -> None:
    """kvmnet's table on each backend where it is present (a backend this host cannot read
    holds none of kvmnet's rules)."""
    spoof = any(n.spoof_protection for n in topo.networks)
    for backend, name in (("nftables", naming.nft_table(topo.name)), ("iptables", naming.iptables_prefix(topo.name))):
        try:
            present = host.firewall(name, backend, spoof).get("exists")
        except (KvmnetError, OSError, ImportError):
            present = False
        if present:
            add(f"firewall:{backend}:{name}", delete_step(backend, name))


def _any_file(paths: dict) -> bool:
    extra = reload_paths(paths["conf"])
    return any(os.path.lexists(p) for p in (paths["conf"], paths["pid"], paths["leases"], extra["dir"], extra["bridge"]))
