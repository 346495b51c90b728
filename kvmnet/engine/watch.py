"""`kvmnet watch`: keep every applied topology in sync, woken by events (host/events.py), never
by a timer while all is well.

The decisions are pure and come first: which topologies to keep (`targets`), which events can
concern them (`Interest`), when to try again after a failure (`Backoff`), and when a burst of
events is over (`Debounce`). `Watcher` runs them: on a relevant event it waits for the burst to
end, takes the state lock, and for each applied topology re-plans; a plan with differences is
applied through the same transaction and record as `kvmnet apply`. It never fights the admin:
a topology whose record is gone (destroyed) is dropped at once, a plan that would *remove*
something recorded means the file is not what was applied (that takes `kvmnet apply`), and
objects outside kvmnet's plans are not looked at.
"""

from __future__ import annotations

import os
import re
import time

from ..errors import KvmnetError
from . import record as records, statedir
from ..valueclass import field, mutable

DEBOUNCE_QUIET, DEBOUNCE_MAX = 0.03, 0.2  # a burst is over after 30 ms of quiet, or 200 ms in all
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0
# iptables-nft tables: the iptables backend's chains and the accepts in the host's FORWARD live there
_IPTABLES_TABLES = frozenset({"filter", "nat", "raw", "mangle"})
_NFT_OBJECT = re.compile(r"^(?:add|delete|flush|replace|insert|reset|destroy) \w+ (?:ip6?|inet|bridge|arp|netdev) (\S+)")


# --- pure decisions ------------------------------------------------------------------------------

def targets(applied: dict[str, str], files: dict[str, str] | None) -> dict[str, str]:
    """topology -> file to keep in sync: every applied one with the file its record names, or,
    given FILEs (topology -> path), those of them that are applied. watch never applies a
    topology that is not applied (destroyed, or never applied): that is the admin's call."""
    if files is None:
        return {name: path for name, path in applied.items() if path}
    return {name: path for name, path in files.items() if name in applied}


@mutable
class Interest:
    """What the watched topologies consist of on the host: which notifications can matter."""

    names: set = field(default_factory=set)  # links: bridges, taps, uplinks
    indexes: set = field(default_factory=set)  # their ifindexes as last observed
    pids: set = field(default_factory=set)  # kvmnet's dnsmasq processes

    def relevant(self, event: tuple) -> bool:
        kind = event[0]
        if kind == "link":
            return event[1] in self.names or event[2] in self.indexes
        if kind in ("addr", "route"):
            return event[1] in self.indexes
        if kind == "nft":
            return nft_line_relevant(event[1])
        return kind in ("overflow", "exit", "firewalld")


def nft_line_relevant(line: str) -> bool:
    """An `nft monitor` line about kvmnet's tables, or the iptables-nft tables kvmnet may use;
    not the generation comments, nor other tables (firewalld's, Docker's)."""
    if line.startswith("#"):
        return False
    found = _NFT_OBJECT.match(line)
    if not found:
        return True  # `flush ruleset` and anything unforeseen: look
    table = found[1]
    return table.startswith("kvmnet") or table in _IPTABLES_TABLES


class Backoff:
    """Per topology: after n failures in a row, wait BACKOFF_FIRST * 2^(n-1) (at most
    BACKOFF_MAX) before trying again; a success resets it."""

    def __init__(self):
        self.failures: dict[str, int] = {}
        self.until: dict[str, float] = {}

    def failed(self, name: str, now: float) -> float:
        n = self.failures[name] = self.failures.get(name, 0) + 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (n - 1))
        self.until[name] = now + delay
        return delay

    def succeeded(self, name: str) -> None:
        self.failures.pop(name, None)
        self.until.pop(name, None)

    forget = succeeded

    def ready(self, name: str, now: float) -> bool:
        return self.until.get(name, 0) <= now

    def next_retry(self) -> float | None:
        return min(self.until.values(), default=None)


class Debounce:
    """A burst of events ends after DEBOUNCE_QUIET without one, or DEBOUNCE_MAX after its first."""

    def __init__(self):
        self.first = self.last = None

    def event(self, now: float) -> None:
        self.first = now if self.first is None else self.first
        self.last = now

    def due(self) -> float | None:
        """When the burst is over (None: no burst)."""
        if self.first is None:
            return None
        return min(self.first + DEBOUNCE_MAX, self.last + DEBOUNCE_QUIET)

    def reset(self) -> None:
        self.first = self.last = None


def wait_timeout(now: float, *deadlines: float | None) -> float | None:
    """How long poll() may sleep: until the earliest deadline, or forever without one."""
    pending = [d for d in deadlines if d is not None]
    return max(0.0, min(pending) - now) if pending else None


def describe_repair(name: str, actions, took_ms: float) -> str:
    drifted = ", ".join(dict.fromkeys(a.key for a in actions))
    done = "; ".join(a.do.describe() for a in actions)
    return f"{name}: repaired in {took_ms:.0f} ms (drifted: {drifted}): {done}"


# --- the loop ------------------------------------------------------------------------------------

class Watcher:
    """`log(line)` reports; `files` (topology -> path) restricts watch to those FILEs."""

    def __init__(self, state_root: str, log, files: dict[str, str] | None = None, host=None):
        self.root, self.log, self.files, self.host = state_root, log, files, host
        self.backoff, self.interest = Backoff(), Interest()
        self.loaded: dict[str, tuple] = {}  # topology -> (record stamp, Topology)
        self.held: dict[str, str] = {}  # topology -> why it is left alone (said once)
        self.failed_last = False

    def sync(self) -> None:
        """One pass: every watched topology re-planned, and repaired where it drifted."""
        now = time.monotonic()
        corrupt: list = []
        interest = Interest()
        self.failed_last = False
        with statedir.locked(self.root):
            applied = {r.topology: r.file for r in records.all_records(self.root, corrupt=corrupt)}
            want = targets(applied, self.files)
            for name in [n for n in self.loaded if n not in want]:
                self.log(f"{name}: no longer applied (destroyed); dropped")
                del self.loaded[name]
                self.backoff.forget(name)
            for name, path in want.items():
                if self.backoff.ready(name, now):
                    self._sync_one(name, path, interest)
                elif name in self.loaded:
                    _note(interest, self.loaded[name][1], None)
        for bad in corrupt:
            self._hold(str(bad.path), f"{bad}")
        self.interest = interest

    def _sync_one(self, name: str, path: str, interest: Interest) -> None:
        from .context import Context
        from .transaction import apply
        try:
            topo = self._topology(name, path)
            ctx = Context(topo, self.root, host=self.host)
            _note(interest, topo, ctx.observed)
            if not ctx.actions:
                self._resolved(name)
                return
            if any(a.kind == "remove" for a in ctx.actions):
                self._hold(name, f"{path} is not what is applied (it would remove "
                                 f"{', '.join(a.key for a in ctx.actions if a.kind == 'remove')}); "
                                 "left alone until `kvmnet apply` or `kvmnet destroy`")
                return
            t0 = time.monotonic()
            result = apply(topo, self.root, host=self.host)
            took = (time.monotonic() - t0) * 1000
            self.loaded[name] = (_stamp(self.root, name), topo)  # our own write: not someone's apply
            self.log(describe_repair(name, result.actions or ctx.actions, took))
            _note(interest, topo, Context(topo, self.root, host=self.host).observed)
            self._resolved(name)
        except KvmnetError as exc:
            self.failed_last = True
            delay = self.backoff.failed(name, time.monotonic())
            n = self.backoff.failures[name]
            self.log(f"{name}: repair failed ({n} in a row): {exc}; next try in {delay:.1f} s")

    def _topology(self, name: str, path: str):
        """The topology as last applied: the file is read again only when someone applied it
        (the record changed, and not by this watch)."""
        from ..config import load
        stamp = _stamp(self.root, name)
        cached = self.loaded.get(name)
        if cached is None or cached[0] != stamp:
            self.loaded[name] = (stamp, load(path))
            self.held.pop(name, None)
        return self.loaded[name][1]

    def _hold(self, name: str, why: str) -> None:
        if self.held.get(name) != why:
            self.held[name] = why
            self.log(f"{name}: {why}")

    def _resolved(self, name: str) -> None:
        if self.backoff.failures.get(name):
            self.log(f"{name}: in sync again")
        self.backoff.succeeded(name)

    def run(self, sources) -> None:
        """Until SIGTERM or SIGINT: wait for events, debounce, sync; failures retried on backoff."""
        self.sync()
        sources.watch_pids(self.interest.pids)
        burst = Debounce()
        while True:
            now = time.monotonic()
            events = sources.wait(wait_timeout(now, burst.due(), self.backoff.next_retry()))
            now = time.monotonic()
            if any(e[0] == "signal" for e in events):
                return
            for e in events:
                if e[0] == "gone":
                    self.log(f"{e[1]} monitor exited; watching without it")
            if any(self.interest.relevant(e) for e in events):
                burst.event(now)
            due, retry = burst.due(), self.backoff.next_retry()
            if (due is not None and now >= due) or (retry is not None and now >= retry):
                burst.reset()
                self.sync()
                sources.watch_pids(self.interest.pids)


def _note(interest: Interest, topo, observed) -> None:
    """Add what `topo` has on the host to `interest` (names always; indexes and dnsmasq pids
    as observed)."""
    names = {n.bridge for n in topo.networks if n.bridged} | {n.uplink for n in topo.networks if n.uplink}
    names |= {nic.tap for g in topo.guests for nic in g.nics if nic.tap}
    names.discard(None)
    interest.names |= names
    if observed is None:
        return
    interest.indexes |= {observed.links[n].index for n in names if n in observed.links}
    interest.pids |= {p["pid"] for p in observed.processes.values() if p.get("pid")}


def _stamp(state_root: str, name: str) -> tuple | None:
    try:
        st = os.stat(records.path_for(state_root, name))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
