"""`kvmnet try`: apply a file on probation, keep it only if someone confirms in time.

Before the change, a pending-try marker goes into the state dir (<state-dir>/<topology>.try.json,
written durably): the deadline, the trying process, and the version to go back to (the text
of the file as it was applied, from the state record; none if the topology was not applied).
Rolling back re-applies that text (or destroys the topology) and then removes the marker, so
a rollback cut short is simply done again. While the trying process lives it alone decides;
once it is gone (kill -9, a lost SSH session) any later kvmnet command (or `watch`) calls
settle_expired() and finishes the rollback when the deadline has passed.

Callers hold the state lock around begin, confirm, roll_back and settle_expired.
"""

from __future__ import annotations

import json
import os
import time

from .. import config
from ..errors import HostError, InputError
from ..host import procs
from ..host.files import write_private
from ..model import Topology
from . import record as records, statedir
from .steps import Result
from ..valueclass import asdict, mutable

SUFFIX = statedir.TRY_SUFFIX


@mutable
class Pending:
    topology: str
    file: str  # the file on trial
    deadline: float  # wall clock (time.time())
    pid: int  # the `kvmnet try` process...
    started: str  # ...and its start time, so a recycled pid is not mistaken for it
    previous: dict | None  # {"file", "source", "firewall"}: what to re-apply; None: destroy
    confirmed: bool = False

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.deadline

    def trier_alive(self) -> bool:
        return bool(self.started) and not procs.exited(self.pid, self.started)


def marker_path(state_root: str, topology: str) -> str:
    return os.path.join(state_root, topology + SUFFIX)


def load(state_root: str, topology: str) -> Pending | None:
    path = marker_path(state_root, topology)
    try:
        with open(path) as f:
            return Pending(**json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: pending-try marker is corrupt ({exc}); remove it once the host is as you want it")


def _save(state_root: str, pending: Pending) -> None:
    os.makedirs(state_root, mode=0o700, exist_ok=True)
    write_private(marker_path(state_root, pending.topology), json.dumps(asdict(pending), indent=1), durable=True)


def _remove(state_root: str, topology: str) -> None:
    try:
        os.unlink(marker_path(state_root, topology))
    except FileNotFoundError:
        pass


def all_pending(state_root: str) -> list[Pending]:
    try:
        names = sorted(n for n in os.listdir(state_root) if n.endswith(SUFFIX))
    except FileNotFoundError:
        return []
    found = (load(state_root, n[: -len(SUFFIX)]) for n in names)
    return [p for p in found if p is not None]


def begin(topo: Topology, state_root: str, timeout: float, backend: str | None = None,
          replace: bool = False, host=None) -> tuple[Pending, Result]:
    """Write the marker, then apply `topo`. A refused or failed apply removes the marker again
    (the transaction has already put the host back)."""
    from .transaction import apply
    if load(state_root, topo.name) is not None:
        raise InputError(f"{topo.path}: a try of topology {topo.name!r} is already pending; "
                         f"`kvmnet confirm {topo.path}` or wait for it to roll back")
    rec = records.load(state_root, topo.name)
    previous = None
    if rec.entries or rec.uplinks:
        if not rec.source:
            raise InputError(f"{topo.path}: the applied version of topology {topo.name!r} is not known "
                             f"(applied by an older kvmnet): `kvmnet apply {rec.file}` once, then try")
        previous = {"file": rec.file, "source": rec.source, "firewall": rec.firewall_backend}
    pid = os.getpid()
    pending = Pending(topo.name, topo.path, time.time() + timeout, pid, procs.start_time(pid) or "", previous)
    _save(state_root, pending)
    try:
        result = apply(topo, state_root, backend, host, replace)
    except BaseException:
        _remove(state_root, topo.name)
        raise
    return pending, result


def confirm(state_root: str, topology: str) -> Pending:
    """Mark the pending try of `topology` confirmed (the trying process then keeps it). Too late
    once the deadline has passed: HostError, and the rollback goes ahead."""
    pending = load(state_root, topology)
    if pending is None or pending.confirmed:
        raise InputError(f"no try of topology {topology!r} is pending")
    if pending.expired():
        raise HostError(f"too late: the try of {pending.file} expired at {time.ctime(pending.deadline)} "
                        "and is being rolled back")
    pending.confirmed = True
    if not pending.trier_alive():  # the trier was killed: confirming keeps the change all the same
        _remove(state_root, topology)
    else:
        _save(state_root, pending)
    return pending


def finish(state_root: str, pending: Pending) -> None:
    """The trying process has seen the confirmation: the change stays."""
    _remove(state_root, pending.topology)


def roll_back(state_root: str, pending: Pending, host=None) -> Result:
    """Put back the version applied before the try (or destroy the topology if none was), then
    remove the marker. A HostError leaves the marker, so the rollback is tried again."""
    from .teardown import destroy
    from .transaction import apply
    prev = pending.previous
    if prev:
        topo = config.load_text(prev["source"], prev["file"], pending.topology)
        result = apply(topo, state_root, prev["firewall"], host, replace=True)
    else:
        result = destroy(pending.topology, state_root, host=host)
    _remove(state_root, pending.topology)
    return result


def settle_expired(state_root: str, host=None, now: float | None = None) -> list[tuple[Pending, Result]]:
    """Roll back every try whose deadline has passed and whose trying process is gone."""
    done = []
    for pending in all_pending(state_root):
        if pending.confirmed and not pending.trier_alive():
            _remove(state_root, pending.topology)  # confirmed, then the trier died before tidying up
        elif pending.expired(now) and not pending.trier_alive():
            done.append((pending, roll_back(state_root, pending, host)))
    return done


def next_deadline(state_root: str) -> float | None:
    """The earliest deadline of a pending try (for `watch`, which sleeps until then)."""
    deadlines = [p.deadline for p in all_pending(state_root) if not p.confirmed]
    return min(deadlines, default=None)
