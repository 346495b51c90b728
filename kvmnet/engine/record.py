"""The state record: what kvmnet created for one topology and the exact steps that undo it.

Stored as <state-dir>/<topology>/state.json, written atomically (temp file, fsync, rename) and
always *before* the step it describes runs, so a crash at any point leaves a record that
covers everything on the host that kvmnet made.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import InputError
from ..host.files import write_private
from ..model import Topology
from .statedir import topologies

VERSION = 1


@dataclass
class Record:
    topology: str
    file: str = ""
    entries: list = field(default_factory=list)  # [key, undo step as JSON or None], oldest first
    uplinks: dict = field(default_factory=dict)  # network -> the uplink's original addresses/routes
    firewall_backend: str | None = None
    # for QEMU's hooks, which must not parse TOML: bridged network -> bridge, tap -> network
    networks: dict = field(default_factory=dict)
    taps: dict = field(default_factory=dict)
    source: str = ""  # the text of `file` as applied (what `kvmnet try` rolls back to)

    def keys(self) -> set[str]:
        return {k for k, _ in self.entries}

    def add(self, key: str, undo: dict | None) -> bool:
        if key in self.keys():
            return False
        self.entries.append([key, undo])
        return True

    def drop(self, key: str) -> None:
        self.entries = [e for e in self.entries if e[0] != key]

    def to_json(self) -> dict:
        return {"version": VERSION, "topology": self.topology, "file": self.file, "entries": self.entries,
                "uplinks": self.uplinks, "firewall_backend": self.firewall_backend,
                "networks": self.networks, "taps": self.taps, "source": self.source}

    def copy(self) -> "Record":
        return Record.from_json(json.loads(json.dumps(self.to_json())), "")

    @classmethod
    def from_json(cls, data: dict, path: str) -> "Record":
        if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("entries"), list):
            raise InputError(f"{path}: not a kvmnet state record of version {VERSION}")
        return cls(topology=data["topology"], file=data.get("file", ""), entries=[list(e) for e in data["entries"]],
                   uplinks=data.get("uplinks", {}), firewall_backend=data.get("firewall_backend"),
                   networks=data.get("networks", {}), taps=data.get("taps", {}), source=data.get("source", ""))


def path_for(state_root: str, topology: str) -> str:
    return os.path.join(state_root, topology, "state.json")


def load(state_root: str, topology: str) -> Record:
    path = path_for(state_root, topology)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return Record(topology)
    try:
        return Record.from_json(json.loads(text), path)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: state record is corrupt ({exc}); `kvmnet destroy --force FILE` "
                         "removes what kvmnet would have created for FILE, by kvmnet's own names") from None


def clear_stale(state_root: str, topology: str) -> None:
    """Temp files of a writer that was killed mid-write (callers hold the state lock, so no
    live writer can own one)."""
    directory = os.path.dirname(path_for(state_root, topology))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if ".tmp" in name:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


def save(state_root: str, record: Record) -> None:
    path = path_for(state_root, record.topology)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if not record.entries and not record.uplinks:
        remove(state_root, record.topology)
        return
    write_private(path, json.dumps(record.to_json(), indent=1), durable=True)
    _write_hook_index(os.path.dirname(path), record)


HOOK_INDEX = "hooks"


def hook_index(topo: Topology) -> tuple[dict, dict]:
    """(bridged network -> {bridge, mode}, tap -> network): the record's part for QEMU's hooks."""
    networks = {n.name: {"bridge": n.bridge, "mode": n.mode} for n in topo.networks if n.bridged}
    taps = {nic.tap: nic.network for g in topo.guests for nic in g.nics if nic.tap}
    return networks, taps


def _write_hook_index(directory: str, record: Record) -> None:
    """What QEMU's hooks need, one fact per line ("network NAME BRIDGE", "tap TAP NETWORK",
    "file PATH"): reading it needs neither json nor re, which the hook path cannot afford."""
    lines = [f"file {record.file}"]
    lines += [f"network {name} {net['bridge']}" for name, net in sorted(record.networks.items())]
    lines += [f"tap {tap} {network}" for tap, network in sorted(record.taps.items())]
    write_private(os.path.join(directory, HOOK_INDEX), "\n".join(lines) + "\n")


def remove(state_root: str, topology: str) -> None:
    path = path_for(state_root, topology)
    for p in (path, os.path.join(os.path.dirname(path), HOOK_INDEX)):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # not empty: dnsmasq's lease files stay until destroy removes them


def all_records(state_root: str, exclude: str | None = None) -> list[Record]:
    out = []
    for name in topologies(state_root):
        if name != exclude and os.path.isfile(path_for(state_root, name)):
            out.append(load(state_root, name))
    return out
