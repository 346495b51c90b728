"""Run a plan as a transaction: write-ahead record, execute, verify, or roll back.

apply:   record the undo of each new fact *before* making it; run the steps in order; observe
         again and require an empty plan. If anything fails, undo the steps that ran (newest
         first) and restore the record, so the host is as it was.
destroy: run the recorded undo steps newest first, dropping each from the record as it
         succeeds, so an interrupted destroy can simply be run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import faults, hostcheck, naming, record as records
from .config import locate
from .errors import HostError, InputError
from .firewall_plan import SHARED_KEYS
from .host import executor, firewall
from .model import Topology
from .observe import observe
from .plan import planner, uplink_snapshot
from .record import Record
from .steps import Action, Step


@dataclass
class Result:
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check_conflicts(topo: Topology, observed, record: Record) -> None:
    found = hostcheck.conflicts(topo, observed, record)
    if found:
        raise InputError(locate(topo.path, found))


def choose_backend(topo: Topology, override: str | None, record: Record) -> str:
    """--firewall, else the file's `firewall`, else what this topology already uses, else nftables."""
    wanted = override or (topo.firewall if topo.firewall != "auto" else None) or record.firewall_backend
    if wanted in (None, "nftables"):
        if not firewall.nft_available():
            if wanted == "nftables":
                raise InputError("the nftables backend was asked for, but `nft list tables` fails here")
            return "iptables"
        return "nftables"
    from .host import iptables
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
        self.planner = planner(self.topo, self.observed, self.record, self.dir, self.backend)
        self.actions = self.planner.result()
        return self.actions


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
    try:
        for i, action in enumerate(actions):
            faults.check(i)
            if action.kind == "create" and record.add(action.key, action.undo.to_json() if action.undo else None):
                records.save(state_root, record)
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
    for i, (key, undo) in enumerate(reversed(list(record.entries))):
        faults.check(f"d{i}")
        heir = next((r for r in others if key in r.keys()), None)
        if heir is not None and undo is not None:
            # another applied topology still needs this host-wide fact: it inherits the undo
            heir.entries = [[k, undo if k == key and u is None else u] for k, u in heir.entries]
            records.save(state_root, heir)
        elif undo is not None:
            step = Step.from_json(undo)
            try:
                executor.run(step)
            except Exception as exc:
                errors.append(f"{step.describe()}: {exc}")
                continue
            done.append(Action(key, "remove", step, None))
        record.drop(key)
        records.save(state_root, record)
    if errors:
        raise HostError("destroy could not finish (run it again once fixed): " + "; ".join(errors),
                        [a.do.describe() for a in done])
    record.uplinks = {}
    records.remove(state_root, name)
    return Result(done)
