"""Run a plan as a transaction: write-ahead record, execute, verify, or roll back.

Record the undo of each new fact *before* making it; run the steps in order; observe again and
require an empty plan. If anything fails, undo the steps that ran (newest first) and restore
the record, so the host is as it was; an undo that fails stays in the record for destroy.
"""

from __future__ import annotations

import os

from .. import naming
from ..errors import HostError
from ..model import Topology
from . import faults, handover, record as records, topocache
from .context import Context
from .plan import firewall as firewall_plan
from .plan.links import uplink_snapshot
from .plan import shared as shared_fact
from .record import Record, hook_index
from .steps import Action, Result, Step


def apply(topo: Topology, state_root: str, backend: str | None = None, host=None, replace: bool = False) -> Result:
    result = _apply(topo, state_root, backend, host, replace)
    topocache.keep_loaded()  # applied: the file as this run validated it, for the next run (under the lock)
    return result


def _apply(topo: Topology, state_root: str, backend: str | None, host, replace: bool) -> Result:
    ctx = Context(topo, state_root, backend, host, replace)
    topo = ctx.topo  # this host's part, when the file describes several hosts
    record = ctx.record
    shared = [k for k in ctx.plan.wanted if shared_fact(k) and k not in record.keys()]
    # recorded with nothing to undo (a shared fact needed, not made; a sysctl of a link kvmnet
    # made) and no longer wanted: dropped (a stale shared one kept the fact from its last holder)
    stale = [k for k, u in record.entries if u is None and k not in ctx.plan.wanted]
    networks, taps = hook_index(topo)
    if not ctx.actions and not shared and (record.networks, record.taps) == (networks, taps):
        if stale:
            record.drop_all(stale)
        if stale or record.entries and topo.source and record.source_sha256 != records.source_digest(topo.source):
            record.source = topo.source  # (or edits that change nothing on the host: comments)
            records.save(state_root, record)
        return Result()
    actions = ctx.with_listings()
    original = record.copy()
    record.file, record.source = topo.path, topo.source
    record.firewall_backend = ctx.backend
    for net in topo.networks:
        if net.mode == "bridge" and net.name not in record.uplinks:
            record.uplinks[net.name] = uplink_snapshot(net, ctx.observed, record)
    # write-ahead: the record covers every object this run may create before the first step
    # runs (one write, not one per step: 1000 taps would otherwise rewrite it 1000 times)
    added = [action.key for action in actions
             if action.kind == "create" and record.add(action.key, action.undo.to_json() if action.undo else None)]
    if added or _says_more(record, original):
        records.save(state_root, record)
    # else nothing new to cover: a run that only removes and repairs saves after each removal
    # (_run) and at its end; until then the record is the last run's, true of what is left (its
    # text, too, is the last one applied whole: a crash midway leaves the new one unrecorded)
    _run(ctx, actions, original)
    if stale:
        record.drop_all(stale)
    for key in shared:  # needed, not made: recorded so a later destroy elsewhere hands it over
        record.add(key, None)
    record.networks, record.taps = networks, taps
    record.nft_seen = firewall_plan.listing_to_keep(ctx.observed)
    records.save(state_root, record)
    return Result(actions)


def _says_more(record: Record, original: Record) -> bool:
    """The record holds more than the saved one about what this run touches: an uplink's
    snapshot, another firewall backend, another file (QEMU's hooks and --replace read it)."""
    file = os.path.abspath(record.file) if record.file else ""  # (as save() writes it)
    return (record.uplinks != original.uplinks or record.firewall_backend != original.firewall_backend
            or file != (original.file or ""))


def _run(ctx: Context, actions: list[Action], original: Record) -> None:
    """Run `actions` and verify; on any failure roll back and raise HostError."""
    record, journal, running = ctx.record, [], None
    try:
        for first, batch, step in _batches(ctx, actions):
            for i in range(first, first + len(batch)):
                faults.check(i)
            if step.op == handover.OP:  # nothing to run, nothing to roll back: if this run fails,
                handover.run(ctx.root, step.args)  # both records hold the fact, and the last to go reverts it
                faults.check(f"{first}+")
                record.drop_all([batch[0].key])
                records.save(ctx.root, record)
                continue
            journal.extend(batch)  # (a rollback undoes each: a batch is one request, not one fact)
            running = (first, batch, step)
            ctx.host.run(step)
            running = None
            for i in range(first, first + len(batch)):
                faults.check(f"{i}+")
            # what is gone leaves the record now, not with the last write: after a crash a delete run
            # again may find the name or value someone else's (teardown.REPEATABLE; tried, reviewed)
            removed = [a.key for a in batch if a.kind == "remove"]
            if removed:
                record.drop_all(removed)
                records.save(ctx.root, record)
        generation = ctx.host.nft_generation()
        after = (firewall_plan.seen_after_delta(ctx.observed, journal, ctx.topo, generation)
                 or firewall_plan.seen_after_load(ctx.observed, journal, ctx.topo, generation))
        if after is not None:  # the verify observation takes it: no listing of the table's elements
            record.nft_seen = after
        # verify: read back what the steps made (the host's FORWARD chain only if they touched it)
        ctx.observe_again(keep_host_forward=not any(a.do.op.startswith("fwaccept.") for a in journal),
                          ran=tuple(a.do for a in journal))
        # the table kvmnet just loaded, as nft lists it, is what this and later plans must see
        firewall_plan.adopt_content(record, ctx.observed, journal, ctx.topo)
        left = ctx.replan()
        if left:
            raise HostError("after apply the host still differs: " + "; ".join(a.do.describe() for a in left))
    except BaseException as exc:
        undone, failed = _rollback(ctx.host, journal)
        kept = [e for e in record.entries if e[0] in failed and e[0] not in original.keys()]
        original.entries.extend(kept)
        records.save(ctx.root, original)
        where = journal[-1].do.describe() if journal else "before any step"
        message = f"apply failed at step {len(journal)} ({where}): {exc}"
        if running and len(running[1]) > 1:  # steps run as one request: it failed as a whole
            first, batch, step = running
            message = f"apply failed at steps {first + 1}-{first + len(batch)} ({step.describe()}): {exc}"
        if failed:
            message += f"; could not undo: {', '.join(sorted(failed))} (kept in the record for destroy)"
        raise HostError(message, undone) from exc


def _batches(ctx: Context, actions: list[Action]):
    """(index of the first, actions, the one step that runs them): each action alone, but a run
    of removed taps goes in one request, moved into the topology's removal link group and deleted
    with it. One by one, each deletion waits for the kernel's RCU grace period (~20 ms): removing
    1000 guests took 18 s of netlink and 1000 record writes (5.7 s); now ~1 s and one write."""
    i = 0
    while i < len(actions):
        run = 1
        if _removed_tap(ctx, actions[i]):
            while i + run < len(actions) and _removed_tap(ctx, actions[i + run]):
                run += 1
        batch = actions[i:i + run]
        if run == 1:
            yield i, batch, batch[0].do
        else:
            names = [a.do.args["name"] for a in batch]
            yield i, batch, Step("links.del_group", {"group": naming.removal_group(ctx.topo.name), "names": names,
                                                     "regroup": True})
        i += run


def _removed_tap(ctx: Context, action: Action) -> bool:
    if action.kind != "remove" or action.do.op != "link.del":
        return False
    link = ctx.observed.links.get(action.do.args["name"])
    return link is not None and link.kind == "tun"


def _rollback(host, journal: list[Action]) -> tuple[list[str], set[str]]:
    undone, failed = [], set()
    for action in reversed(journal):
        if action.undo is None:
            continue
        try:
            host.run(action.undo)
            undone.append(action.undo.describe())
        except Exception:
            failed.add(action.key)
    return undone, failed
