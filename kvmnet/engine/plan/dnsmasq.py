"""Facts about dnsmasq: one instance per network that serves DHCP or DNS, with its config. Pure."""

from __future__ import annotations

from ... import naming
from ...model import Topology
from ...observed import Observed
from ...render import dnsmasq as dnsmasq_conf
from ..steps import Step
from .facts import Facts


def networks(topo: Topology):
    return [n for n in topo.networks if dnsmasq_conf.needs_dnsmasq(n)]


def stop_step(network: str, paths: dict, exe: str) -> Step:
    """Stop the instance and remove its config and leases (its undo, and `destroy --force`'s)."""
    return Step("dnsmasq.stop", {"network": network, "conf": paths["conf"], "pid_file": paths["pid"],
                                 "leases": paths["leases"], "exe": exe, "purge": True})


def _undo(step: Step, observed: Observed | None = None) -> Step:
    """Undo of dnsmasq.start: restart with the config it ran with, or stop the new one."""
    a = step.args
    if a.get("previous"):
        return Step("dnsmasq.start", dict(a, conf_text=a["previous"], previous=None))
    return stop_step(a["network"], {"conf": a["conf"], "pid": a["pid_file"], "leases": a["leases"]}, a["exe"])


UNDO = {"dnsmasq.start": _undo}


def instance(facts: Facts, topo: Topology, net, state_dir: str) -> None:
    observed = facts.obs
    paths = naming.dnsmasq_paths(state_dir, net.name)
    text = dnsmasq_conf.render(topo, net, paths, observed.dnsmasq_user)
    seen = observed.processes.get(f"dnsmasq:{net.name}", {})
    key = f"dnsmasq:{net.name}"
    if seen.get("pid") and seen.get("conf_text") == text:
        facts.want(key, None)
        return
    do = Step("dnsmasq.start", {
        "network": net.name, "bridge": net.bridge, "conf": paths["conf"], "conf_text": text,
        "pid_file": paths["pid"], "leases": paths["leases"], "exe": observed.dnsmasq_exe,
        "previous": seen.get("conf_text") if seen.get("pid") else None})
    facts.want(key, do, _undo(do))


def instances(facts: Facts, topo: Topology, state_dir: str) -> None:
    for net in networks(topo):
        instance(facts, topo, net, state_dir)
