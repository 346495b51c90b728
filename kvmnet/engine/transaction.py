"""Run a plan as a transaction: write-ahead record, execute, verify, or roll back.

apply:   record the undo of each new fact *before* making it; run the steps in order; observe
         again and require an empty plan. If anything fails, undo the steps that ran (newest
         first) and restore the record, so the host is as it was.
destroy: run the recorded undo steps newest first, dropping each from the record as it
         succeeds, so an interrupted destroy can simply be run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import faults, hostcheck, record as records
from .. import naming
from ..config import locate
from ..errors import HostError, InputError
from .plan.forwarding import SHARED_KEYS
from ..host import executor, nftables
from ..model import Topology
from .observe import observe
from .plan import planner, uplink_snapshot
from .record import Record
from .steps import Action, Step


@dataclass
class Result:
    actions: list[Action] = field(default_factory=list)


def _check_conflicts(topo: Topology, observed, record: Record) -> None:
    found = hostcheck.conflicts(topo, observed, record)
    if found:
        raise InputError(locate(topo.path, found))


def choose_backend(topo: Topology, override: str | None, record: Record) -> str:
    """--firewall, else the file's `firewall`, else what this topology already uses, else nftables."""
    wanted = override or (topo.firewall if topo.firewall != "auto" else None) or record.firewall_backend
    if wanted in (None, "nftables"):
        if not nftables.nft_available():
            if wanted == "nftables":
                raise InputError("the nftables backend was asked for, but `nft` is not installed (apt-get install nftables)")
            return "iptables"
        return "nftables"
    from ..host import iptables_probe as iptables
    problem = iptables.unusable_reason()
    if problem:
        raise InputError(problem)
    return "iptables"


class Context:
    """One topology against this host: its state dir, record, backend, observation and plan."""

    def __init__(self, topo: Topology, state_root: str, backend: str | None = None):
        self.topo, self.root = topo, state_root
        self.dir = naming.state_dir_for(topo.name, state_root)
        records.clear_stale(state_root, topo.name)
        self.record = records.load(state_root, topo.name)
        self.backend = choose_backend(topo, backend, self.record)
        self.refresh()
        _check_conflicts(topo, self.observed, self.record)

    def refresh(self) -> list[Action]:
        self.observed = observe(self.topo, self.dir, self.backend)
        self._plan()
        fw = self.observed.firewall
        if (self.backend == "nftables" and fw.get("exists") and "text" not in fw
                and any(a.do.op == "firewall.apply" for a in self.actions)):
            # the table will change: keep its current text so a rollback can put it back
            table = naming.nft_table(self.topo.name)
            self.observed = replace(self.observed, firewall=dict(fw, text=nftables.listing(table)))
            self._plan()
        return self.actions

    def _plan(self) -> None:
        self.planner = planner(self.topo, self.observed, self.record, self.dir, self.backend)
        self.actions = self.planner.result()


def compute(topo: Topology, state_root: str, backend: str | None = None) -> tuple[Record, object, list[Action]]:
    """The plan for `topo` against this host, with no change made."""
    ctx = Context(topo, state_root, backend)
    return ctx.record, ctx.observed, ctx.actions


def apply(topo: Topology, state_root: str, backend: str | None = None) -> Result:
    ctx = Context(topo, state_root, backend)
    record, observed, actions = ctx.record, ctx.observed, ctx.actions
    shared = [k for k in ctx.planner.wanted if k in SHARED_KEYS and k not in record.keys()]
    networks, taps = hook_index(topo)
    if not actions and not shared and (record.networks, record.taps) == (networks, taps):
        return Result()
    original = record.copy()
    record.file = topo.path
    record.firewall_backend = ctx.backend
    for net in topo.networks:
        if net.mode == "bridge" and net.name not in record.uplinks:
            record.uplinks[net.name] = uplink_snapshot(net, observed, record)
    journal: list[Action] = []
    # write-ahead: the record covers every object this run may create before the first step
    # runs (one write, not one per step: 1000 taps would otherwise rewrite it 1000 times)
    for action in actions:
        if action.kind == "create":
            record.add(action.key, action.undo.to_json() if action.undo else None)
    records.save(state_root, record)
    try:
        for i, action in enumerate(actions):
            faults.check(i)
            journal.append(action)
            executor.run(action.do)
            faults.check(f"{i}+")
            if action.kind == "remove":
                record.drop(action.key)
                records.save(state_root, record)
        left = ctx.refresh()
        if left:
            raise HostError("after apply the host still differs: " + "; ".join(a.do.describe() for a in left))
    except BaseException as exc:
        undone, failed = _rollback(journal)
        kept = [e for e in record.entries if e[0] in failed and e[0] not in original.keys()]
        original.entries.extend(kept)
        records.save(state_root, original)
        message = f"apply failed at step {len(journal)} ({journal[-1].do.describe() if journal else 'before any step'}): {exc}"
        if failed:
            message += f"; could not undo: {', '.join(sorted(failed))} (kept in the record for destroy)"
        raise HostError(message, undone) from exc
    for key in shared:  # needed, not made: recorded so a later destroy elsewhere hands it over
        record.add(key, None)
    record.networks, record.taps = networks, taps
    records.save(state_root, record)
    return Result(actions)


def hook_index(topo: Topology) -> tuple[dict, dict]:
    networks = {n.name: {"bridge": n.bridge, "mode": n.mode} for n in topo.networks if n.bridged}
    taps = {nic.tap: nic.network for g in topo.guests for nic in g.nics if nic.tap}
    return networks, taps


def _rollback(journal: list[Action]) -> tuple[list[str], set[str]]:
    undone, failed = [], set()
    for action in reversed(journal):
        if action.undo is None:
            continue
        try:
            executor.run(action.undo)
            undone.append(action.undo.describe())
        except Exception:
            failed.add(action.key)
    return undone, failed


def destroy(name: str, state_root: str, record: Record | None = None) -> Result:
    """Undo everything recorded for topology `name`. `record` overrides the saved one (--force)."""
    record = record or records.load(state_root, name)
    others = records.all_records(state_root, exclude=name)
    done: list[Action] = []
    errors = []
    for i, (keys, step) in enumerate(_destroy_steps(record)):
        faults.check(f"d{i}")
        heir = next((r for r in others if keys[0] in r.keys()), None) if step else None
        if heir is not None:
            # another applied topology still needs this host-wide fact: it inherits the undo
            heir.entries = [[k, step.to_json() if k == keys[0] and u is None else u] for k, u in heir.entries]
            records.save(state_root, heir)
        elif step is not None:
            try:
                executor.run(step)
            except Exception as exc:
                errors.append(f"{step.describe()}: {exc}")
                continue
            done.append(Action(keys[0], "remove", step, None))
        for key in keys:
            record.drop(key)
        records.save(state_root, record)
    if errors:
        raise HostError("destroy could not finish (run it again once fixed): " + "; ".join(errors),
                        [a.do.describe() for a in done])
    record.uplinks = {}
    records.remove(state_root, name)
    return Result(done)


def _destroy_steps(record: Record):
    """(keys, undo step) newest first; the topology's taps go together, as one link group."""
    taps = [(k, u) for k, u in record.entries
            if u and u["op"] == "link.del" and u["args"]["name"] in record.taps]
    grouped = False
    for key, undo in reversed(list(record.entries)):
        if taps and any(key == k for k, _ in taps):
            if not grouped:
                grouped = True
                names = [u["args"]["name"] for _, u in taps]
                yield [k for k, _ in taps], Step("links.del_group", {"group": naming.link_group(record.topology),
                                                                     "names": names})
            continue
        yield [key], Step.from_json(undo) if undo else None
