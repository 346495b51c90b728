"""Host-wide facts several topologies may need (ip_forward, an uplink's accept_ra, kvmnet's
firewalld zones): a topology that stops needing one, by destroy or by an apply of a file that
no longer wants it, hands its undo to another applied topology that still holds the fact,
instead of reverting it under that topology's guests. The last holder reverts it."""

from __future__ import annotations

from . import record as records
from .plan import shared as shared_fact
from .record import Record
from ..errors import HostError
from .steps import Action, Step

OP = "record.hand_over"  # a removal that runs nothing on the host: another record takes its undo


def heir(others: list[Record], key: str) -> Record | None:
    """The applied topology that inherits this undo: only host-wide facts are shared; a
    per-topology object whose key another record happens to hold too (two topologies'
    networks both named `lab`, in records of the old key shape) is undone by its own."""
    if not shared_fact(key):
        return None
    return next((r for r in others if key in r.keys()), None)


def marked(actions: list[Action], state_root: str, name: str) -> list[Action]:
    """The plan's actions with each removal of a shared fact another applied topology holds
    made a hand-over (the other records are read only when the plan removes a shared fact)."""
    shared = [i for i, a in enumerate(actions) if a.kind == "remove" and shared_fact(a.key)]
    if not shared:
        return actions
    holders, out = others(state_root, name), list(actions)
    for i in shared:
        key, undo = actions[i].key, actions[i].do
        h = heir(holders, key)
        if h is not None:
            out[i] = Action(key, "remove", Step(OP, {"key": key, "heir": h.topology, "undo": undo.to_json()}), None)
    return out


def run(state_root: str, args: dict) -> None:
    """A planned hand-over (planned and run under the state dir's lock, so the heir still holds
    the fact)."""
    holder = records.load(state_root, args["heir"])
    if args["key"] not in holder.keys():
        raise HostError(f"topology {args['heir']} no longer holds {args['key']}: plan again")
    hand_over(state_root, holder, args["key"], Step.from_json(args["undo"]))


def hand_over(state_root: str, heir: Record, key: str, step: Step) -> None:
    """The heir's record takes the undo (written before the giver drops the key: a crash
    between leaves both holding it, and whichever goes last still reverts the fact)."""
    heir.entries = [[k, step.to_json() if k == key and u is None else u] for k, u in heir.entries]
    records.save(state_root, heir)


def others(state_root: str, name: str) -> list[Record]:
    """The records that may inherit: another topology's corrupt record inherits nothing, and
    must not block this one."""
    return records.all_records(state_root, exclude=name, corrupt=[])
