"""Facts about dnsmasq: one instance per network that serves DHCP or DNS, with its config. Pure.

An instance's key is per topology, `dnsmasq:<topology>:<network>` (two topologies may both name
a network `lab`); records written before that keep their `dnsmasq:<network>` key. A change to
the DNS records or static leases reloads the running instance (SIGHUP: same pid, DHCP and DNS
never down); a change to what dnsmasq cannot re-read (interface, ranges, options), a dead
instance, or a bridge re-created since it started (its DHCP socket names the old bridge)
restarts it.
"""

from __future__ import annotations

from ... import naming
from ...model import Topology
from ...observed import Observed
from ...render import dnsmasq as dnsmasq_conf
from ..steps import Step
from .facts import Facts


def networks(topo: Topology):
    return [n for n in topo.networks if dnsmasq_conf.needs_dnsmasq(n)]


def key(topology: str, network: str, record_keys=frozenset()) -> str:
    legacy = f"dnsmasq:{network}"
    return legacy if legacy in record_keys else f"dnsmasq:{topology}:{network}"


def stop_step(network: str, paths: dict) -> Step:
    """Stop the instance and remove its files (its undo, and `destroy --force`'s)."""
    return Step("dnsmasq.stop", {"network": network, "conf": paths["conf"], "pid_file": paths["pid"],
                                 "leases": paths["leases"], "purge": True})


def _undo(step: Step, observed: Observed | None = None) -> Step:
    """Undo of dnsmasq.start: restart with the config it ran with, or stop the new one."""
    a = step.args
    if a.get("previous"):
        return Step("dnsmasq.start", dict(a, conf_text=a["previous"], hosts=a.get("previous_hosts") or "",
                                          dhcp_hosts=a.get("previous_dhcp_hosts") or "", previous=None,
                                          previous_hosts=None, previous_dhcp_hosts=None))
    return stop_step(a["network"], {"conf": a["conf"], "pid": a["pid_file"], "leases": a["leases"]})


UNDO = {"dnsmasq.start": _undo}


def _serves_bridge(seen: dict, net, observed: Observed) -> bool:
    """The running instance was started for the bridge that exists now (same ifindex); an
    instance started before kvmnet noted it is given the benefit of the doubt."""
    link = observed.links.get(net.bridge)
    if link is None:
        return False  # the bridge is (re-)created by this plan: a restart must follow
    return seen.get("bridge") is None or list(seen["bridge"]) == [net.bridge, link.index]


def instance(facts: Facts, topo: Topology, net, state_dir: str, record_keys=frozenset()) -> None:
    observed = facts.obs
    seen = observed.processes.get(f"dnsmasq:{net.name}", {})
    group = seen.get("group")
    paths = naming.dnsmasq_paths(state_dir, net.name)
    want = {"conf_text": dnsmasq_conf.render(topo, net, paths, observed.dnsmasq_user, group),
            "hosts": dnsmasq_conf.render_hosts(topo, net), "dhcp_hosts": dnsmasq_conf.render_dhcp_hosts(topo, net)}
    fact = key(topo.name, net.name, record_keys)
    common = {"network": net.name, "bridge": net.bridge, "conf": paths["conf"], "pid_file": paths["pid"],
              **({"group": group} if group else {})}
    running = bool(seen.get("pid"))
    if running and seen.get("conf_text") == want["conf_text"] and _serves_bridge(seen, net, observed):
        if (seen.get("hosts"), seen.get("dhcp_hosts")) == (want["hosts"], want["dhcp_hosts"]):
            facts.want(fact, None)
            return
        do = Step("dnsmasq.reload", dict(common, hosts=want["hosts"], dhcp_hosts=want["dhcp_hosts"]))
        undo = Step("dnsmasq.reload", dict(common, hosts=seen.get("hosts") or "", dhcp_hosts=seen.get("dhcp_hosts") or ""))
        facts.want(fact, do, undo, kind="modify")  # the record's undo (stop) stays as it is
        return
    before = seen if running and seen.get("conf_text") else {}
    do = Step("dnsmasq.start", dict(common, leases=paths["leases"], **want, previous=before.get("conf_text"),
                                    previous_hosts=before.get("hosts"), previous_dhcp_hosts=before.get("dhcp_hosts")))
    facts.want(fact, do, _undo(do))


def instances(facts: Facts, topo: Topology, state_dir: str, record_keys=frozenset()) -> None:
    for net in networks(topo):
        instance(facts, topo, net, state_dir, record_keys)
