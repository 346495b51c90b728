"""Facts about qemu-bridge-helper's ACL: an `allow BRIDGE` line, in kvmnet's own file included
from bridge.conf, for each network with `allow_unprivileged = true`. Pure."""

from __future__ import annotations

from ...model import Topology
from ..steps import Step
from .facts import Facts


def _opposite(op: str):
    return lambda step, observed=None: Step(op, dict(step.args))


UNDO = {"qemuacl.add": _opposite("qemuacl.del"), "qemuacl.del": _opposite("qemuacl.add")}


def allows(facts: Facts, topo: Topology) -> None:
    acl = facts.obs.qemu_acl
    for net in topo.networks:
        if not (net.allow_unprivileged and net.bridged):
            continue
        do = Step("qemuacl.add", {"conf_dir": acl["dir"], "bridge": net.bridge, "topology": topo.name})
        held = acl["allowed"].get(net.bridge) == topo.name
        facts.want(f"qemuacl:{net.bridge}", None if held else do, UNDO["qemuacl.add"](do))
