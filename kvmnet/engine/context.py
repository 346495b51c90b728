"""One topology against this host: its state dir, record, firewall backend, observation and plan.

Building a Context changes nothing on the host; it refuses (InputError, with file:line) a
topology that would take over something kvmnet does not own.
"""

from __future__ import annotations

import os

from .. import naming
from ..config import locate
from ..errors import InputError
from ..host import backend as backends, system
from ..model import Topology
from . import handover, hostcheck, overlay, record as records
from .observe import observe
from .plan import Plan, firewall as firewall_plan, firewalld as firewalld_plan, make
from .steps import Action


class Context:
    def __init__(self, topo: Topology, state_root: str, backend: str | None = None, host=None,
                 replace: bool = False):
        self.host = host or system.default()
        if topo.overlay is not None:  # several hosts in the file: this host's part of it
            links = self.host.links()
            topo = overlay.decide(topo, links, self.host.addrs(links))
        self.topo, self.root = topo, state_root
        self.dir = naming.state_dir_for(topo.name, state_root)
        records.clear_stale(state_root, topo.name)
        self.record = records.load(state_root, topo.name)
        firewalld_plan.migrate(self.record)
        if not replace:
            _refuse_another_file(topo, self.record)
        # --firewall, else the file's `firewall`, else what this topology already uses
        wanted = backend or (topo.firewall if topo.firewall != "auto" else None) or self.record.firewall_backend
        self.backend = backends.choose(wanted, self.host, ipv6=any(n.subnet6 for n in topo.networks))
        self.refresh()
        found = hostcheck.conflicts(topo, self.observed, self.record,
                                    hostcheck.taps_of_other_topologies(state_root, topo.name))
        if found:
            raise InputError(locate(topo.path, found))

    def refresh(self, keep_host_forward: bool = False, ran: tuple | None = None) -> list[Action]:
        """Observe the host again and plan against it."""
        self.observe_again(keep_host_forward, ran)
        return self.replan()

    def observe_again(self, keep_host_forward: bool = False, ran: tuple | None = None) -> None:
        """`keep_host_forward`: the host's FORWARD chain as last read (only kvmnet's fwaccept
        steps change it). `ran`: the steps run since the last observation (a verify): what they
        did not touch is taken from it."""
        recorded = tuple(k.removeprefix("sysctl:") for k in self.record.keys() if k.startswith("sysctl:"))
        kept = self.observed.host_forward if keep_host_forward else None
        since = self.observed if ran is not None else None
        self.observed = observe(self.topo, self.dir, self.backend, self.host, self.record.nft_seen, recorded, kept,
                                since, ran or ())

    def replan(self) -> list[Action]:
        self.plan: Plan = make(self.topo, self.observed, self.record, self.dir, self.backend)
        self.actions = handover.marked(self.plan.actions, self.root, self.topo.name)
        return self.actions

    def with_listings(self) -> list[Action]:
        """The actions with every undo complete: a table that will change is read once, so that
        a rollback can load the rules it has now."""
        texts: dict[str, str] = {}
        out = []
        for action in self.actions:
            table = firewall_plan.needs_listing(action)
            if table is not None:
                if table not in texts:
                    texts[table] = self.host.firewall_listing(table)
                action = firewall_plan.with_listing(action, texts[table])
            out.append(action)
        return out


def _refuse_another_file(topo: Topology, record) -> None:
    """Two files with one topology name: applying the second would silently tear down what the
    first made (its bridges, taps, rules), so that takes --replace."""
    if not record.entries or not os.path.isabs(record.file or "") or not topo.path:
        return  # (records before 0.2 kept the path as typed: relative to an unknown cwd)
    if os.path.realpath(record.file) != os.path.realpath(topo.path):
        raise InputError(f"{topo.path}: topology {topo.name!r} is applied here from another file, {record.file}; "
                         f"applying {topo.path} would replace what that file made: say --replace to do so, "
                         "or give this file another `name`")


def compute(topo: Topology, state_root: str, backend: str | None = None, host=None):
    """(record, observed, actions): the plan for `topo` against this host, with no change made."""
    ctx = Context(topo, state_root, backend, host)
    return ctx.record, ctx.observed, ctx.actions
