"""Facts about VDE switches: a running vde_switch per `mode = "vde"` network, joined to a
kvmnet bridge through its tap when the network names one. Pure."""

from __future__ import annotations

from ... import naming
from ...model import Topology
from ..steps import Step
from .facts import Facts


def _stop(step: Step, observed=None) -> Step:
    a = step.args
    return Step("vde.stop", {k: a[k] for k in ("network", "ctl", "pid_file", "mgmt")})


UNDO = {"vde.start": _stop}


def switches(facts: Facts, topo: Topology, state_dir: str) -> None:
    for net in topo.networks:
        if net.mode != "vde":
            continue
        paths = naming.vde_paths(state_dir, net.name)
        args = {"network": net.name, "ctl": paths["ctl"], "pid_file": paths["pid"], "mgmt": paths["mgmt"]}
        if net.vde_join:
            args.update(tap=naming.vde_tap(topo.name, net.name), bridge=net.vde_join)
        start = Step("vde.start", args)
        running = facts.obs.processes.get(f"vde:{net.name}", {}).get("pid")
        tap = facts.obs.links.get(args.get("tap", ""))
        joined = not net.vde_join or (tap is not None and tap.master == net.vde_join and tap.up)
        key = f"vde:{topo.name}:{net.name}"
        if running and not joined:  # re-attach the switch's tap (a re-created bridge lost it)
            facts.want(key, start, None, kind="modify")
        else:
            facts.want(key, None if running else start, _stop(start))
