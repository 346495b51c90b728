"""kvmnet-ifup / kvmnet-ifdown: QEMU's script= and downscript=, replacing /etc/qemu-ifup.

QEMU runs `SCRIPT TAP` after it opened the tap and `DOWNSCRIPT TAP` before closing it, on every
guest start and stop, so this path imports only the standard library and kvmnet's light modules
and sends one netlink request. Only when the network is not applied yet does it load the engine
(under the state lock, so 50 guests starting at once apply it once).

ifup:   attach TAP to its network's bridge, with the bridge's MTU, and set it up.
ifdown: detach TAP and set it down, unless the tap belongs to an applied topology (pre-created
        taps stay with their topology). Never the bridge, rules or dnsmasq: those belong to the
        network, which outlives any one guest (the seed's ifdown deleted the bridge and flushed
        the whole nat table).
"""

from __future__ import annotations

import os

from .engine import statedir
from .errors import InputError
from .host import rtnl
from .ifname import problem as ifname_problem


class _Applied:
    """One applied topology as its hook index tells it (record.py writes the index beside
    state.json; parsing state.json itself would import json, re and enum: ~10 ms)."""

    def __init__(self, name: str, text: str):
        self.name, self.file, self.networks, self.taps = name, "", {}, {}
        for line in text.split("\n"):  # (not splitlines(): it also breaks at \u2028, \x85, ...)
            kind, _, rest = line.partition(" ")
            words = rest.split(" ")
            if kind == "file" and not self.file:  # (the first: the one record.py writes)
                self.file = rest
            elif kind in ("network", "tap") and len(words) == 2 and not ifname_problem(words[1 if kind == "network" else 0]):
                if kind == "network":  # (a line of another shape, or a name no link can have, is no fact)
                    self.networks[words[0]] = {"bridge": words[1]}
                else:
                    self.taps[words[0]] = words[1]


def _applied(state_root: str) -> list[_Applied]:
    out = []
    for name in statedir.topologies(state_root):
        text = statedir.read(state_root, name, "hooks")  # trusted files only, no symlinks
        if text is not None:
            out.append(_Applied(name, text))
    return out


def _find(state_root: str, tap: str, network: str | None):
    """(record, network name) for TAP: --network, $KVMNET_NETWORK, the tap's record, or the
    only bridged network applied here."""
    recs = _applied(state_root)
    network = network or os.environ.get("KVMNET_NETWORK") or None
    if network is None:
        network = next((r.taps[tap] for r in recs if tap in r.taps), None)
    if network is None:
        names = [n for r in recs for n in r.networks]
        if len(names) == 1:
            network = names[0]
        elif names:
            raise InputError(f"{tap}: several networks are applied ({', '.join(sorted(names))}); "
                             "say which with --network or KVMNET_NETWORK")
    for rec in recs:
        if network in rec.networks:
            return rec, network
    return None, network


def _apply_slow_path(state_root: str, network: str | None, rec) -> None:
    """The network is not applied (or its bridge is gone): apply its topology, once. That is the
    text root applied last, kept in the state dir, not the file at its path again: whoever may
    write that file (a user's lab.toml) must not have what they wrote since applied by a guest's
    start. $KVMNET_TOPOLOGY, set by whoever starts QEMU, names a file to apply instead."""
    path = os.environ.get("KVMNET_TOPOLOGY")
    if not path and not rec:
        raise InputError(f"network {network or '(unknown)'} is not applied here; run `kvmnet apply FILE` "
                         "first or set KVMNET_TOPOLOGY=FILE for the hook")
    from . import engine
    from . import config
    from .config import loader
    from .engine import record as records

    with statedir.locked(state_root):
        if path:
            topo = config.load(path)
        else:
            text = records.load(state_root, rec.name).source
            if not text:
                raise InputError(f"network {network}: the state dir keeps no applied text of {rec.file}; "
                                 f"run `kvmnet apply {rec.file}` again")
            topo = loader.load_text(text, rec.file)
        engine.apply(topo, state_root)


def _attach(state_root: str, tap: str, network: str | None):
    """(record, network, message): TAP attached to its network's bridge, or message None when
    the network is not applied (or its bridge is gone)."""
    rec, network = _find(state_root, tap, network)
    bridge = rec.networks[network]["bridge"] if rec else None
    index = rtnl.index_of(bridge) if bridge else None
    if index is None:
        return rec, network, None
    rtnl.set_link(tap, master=index, mtu=rtnl.read_mtu(bridge), up=True)
    return rec, network, f"{tap}: attached to {bridge} ({network})"


def ifup(tap: str, network: str | None = None, state_root: str | None = None) -> str:
    why = ifname_problem(tap)
    if why:
        raise InputError(why)
    root = statedir.resolve(state_root)
    # apply and destroy hold the state lock exclusively, so the bridge cannot be deleted between
    # reading its index and making it the tap's master (which failed "Invalid argument")
    with statedir.locked(root, shared=True):
        rec, network, done = _attach(root, tap, network)
    if done:
        return done
    _apply_slow_path(root, network, rec)  # takes the lock exclusively: released above
    with statedir.locked(root, shared=True):
        rec, network, done = _attach(root, tap, network)
    if done is None:
        raise InputError(f"network {network} is not in the applied topology")
    return done


def ifdown(tap: str, state_root: str | None = None) -> str:
    why = ifname_problem(tap)
    if why:
        raise InputError(why)
    root = statedir.resolve(state_root)
    if any(tap in r.taps for r in _applied(root)):
        return f"{tap}: belongs to an applied topology; left in place"
    if rtnl.index_of(tap) is None:
        return f"{tap}: already gone"
    try:
        rtnl.set_link(tap, master=0, up=False)
    except OSError as exc:  # QEMU may have closed it meanwhile
        if rtnl.index_of(tap) is not None:
            raise
        return f"{tap}: gone ({exc.strerror})"
    return f"{tap}: detached"
