"""destroy: undo everything recorded for one topology, newest first.

Each undo step is dropped from the record as soon as it succeeds, so an interrupted destroy
can simply be run again. A host-wide fact another applied topology still needs (ip_forward)
is not undone: that topology's record inherits the undo. The topology's taps go in one
request, as one link group.
"""

from __future__ import annotations

from .. import naming
from ..errors import HostError
from ..host import system
from . import faults, handover, record as records, topocache
from .record import Record
from .steps import Action, Result, Step


def destroy(name: str, state_root: str, record: Record | None = None, host=None,
            keep_leases: bool = False) -> Result:
    """Undo everything recorded for topology `name`. `record` overrides the saved one (--force).
    `keep_leases`: dnsmasq's lease files stay (a shutdown: guests keep their addresses at boot)."""
    host = host or system.default()
    record = record or records.load(state_root, name)
    others = handover.others(state_root, name)
    done: list[Action] = []
    errors = []
    unsaved = False  # dropped from the record, not yet written: only steps safe to run again
    for i, (keys, step) in enumerate(_steps(record)):
        if unsaved and (step is None or step.op not in REPEATABLE):
            records.save(state_root, record)
            unsaved = False
        faults.check(f"d{i}")
        heir = handover.heir(others, keys[0]) if step else None
        if heir is not None:
            handover.hand_over(state_root, heir, keys[0], step)
        elif step is not None:
            if keep_leases and step.op == "dnsmasq.stop":
                step = Step(step.op, dict(step.args, leases=None))  # run, never recorded
            try:
                host.run(step)
            except Exception as exc:
                errors.append(f"{step.describe()}: {exc}")
                continue
            done.append(Action(keys[0], "remove", step, None))
        record.drop_all(keys)
        if heir is None and step is not None and step.op in REPEATABLE:
            unsaved = True  # written with the next step that is not (16 networks: one write, not 16)
        elif step is not None or heir is not None:  # an entry with no undo needs no write of its own:
            records.save(state_root, record)  # a destroy run again drops it, doing nothing
    if unsaved:
        records.save(state_root, record)
    if errors:
        raise HostError("destroy could not finish (run it again once fixed): " + "; ".join(errors),
                        [a.do.describe() for a in done])
    record.uplinks = {}
    records.remove(state_root, name)
    if record.file:
        topocache.forget(state_root, record.file)
    return Result(done)


# undo steps that are safe to run again after they succeeded: an interrupted destroy whose record
# still lists them repeats them, and they find nothing to do. dnsmasq.stop signals only the
# process its pid file names when that process runs kvmnet's dnsmasq with this very --conf-file.
# (Not link or address removals, nor sysctl restores: by then the name or value may be someone else's.)
REPEATABLE = frozenset({"dnsmasq.stop"})


def _steps(record: Record):
    """(keys, undo step) newest first; the topology's taps go together, as one link group, and
    so do its other links (bridges): each one's deletion waits while only address removals
    (or entries with nothing to undo) come between, then they go in one request."""
    taps = [(k, u) for k, u in record.entries
            if u and u["op"] == "link.del" and u["args"]["name"] in record.taps]
    tap_keys = {k for k, _ in taps}  # a set: 1000 taps, 1000 entries
    grouped = False
    waiting: list[tuple[str, str]] = []  # (key, link name) of links to delete together
    for key, undo in reversed(list(record.entries)):
        if key in tap_keys:
            if not grouped:
                grouped = True
                yield from _together(record, waiting)
                names = [u["args"]["name"] for _, u in taps]
                yield [k for k, _ in taps], Step("links.del_group", {"group": naming.link_group(record.topology),
                                                                     "names": names})
            continue
        if undo and undo["op"] == "link.del":
            waiting.append((key, undo["args"]["name"]))
            continue
        if undo and undo["op"] != "addr.del":
            yield from _together(record, waiting)
        yield [key], Step.from_json(undo) if undo else None
    yield from _together(record, waiting)


def _together(record: Record, waiting: list[tuple[str, str]]):
    """The waiting links' deletion (emptying `waiting`): one link.del, or one link group."""
    if len(waiting) == 1:
        yield [waiting[0][0]], Step("link.del", {"name": waiting[0][1]})
    elif waiting:
        yield [k for k, _ in waiting], Step("links.del_group", {"group": naming.bridge_group(record.topology),
                                                                "names": [n for _, n in waiting], "what": "bridges"})
    waiting.clear()
