"""The state record: what kvmnet created for one topology and the exact steps that undo it.

Stored as <state-dir>/<topology>/state.json, written atomically (temp file, fsync, rename) and
always *before* the step it describes runs, so a crash at any point leaves a record that
covers everything on the host that kvmnet made.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import stat

from .. import naming
from ..errors import InputError
from ..host import files
from ..host.files import write_private
from ..model import Topology
from . import statedir
from .recordschema import check_record
from .stepschema import SchemaError, Where
from ..valueclass import field, mutable

VERSION = 1


@mutable
class Record:
    topology: str
    file: str = ""
    entries: list = field(default_factory=list)  # [key, undo step as JSON or None], oldest first
    uplinks: dict = field(default_factory=dict)  # network -> the uplink's original addresses/routes
    firewall_backend: str | None = None
    # for QEMU's hooks, which must not parse TOML: bridged network -> bridge, tap -> network
    networks: dict = field(default_factory=dict)
    taps: dict = field(default_factory=dict)
    # fact key -> digest of what kvmnet saw of it right after making it (its nft table's listing)
    content: dict = field(default_factory=dict)
    # fact key -> {map: elements} of that nft table's maps as kvmnet last loaded them (what an
    # element delta starts from while the table's digest is the one in `content`)
    elements: dict = field(default_factory=dict)
    # sha256 of the text of `file` as applied (what `kvmnet try` rolls back to, `enable` compares),
    # which is kept apart in SOURCE_FILE: a destroy rewrites the record after every step, and a
    # 10,000-forward file's text would be two thirds of each write
    source_sha256: str = ""
    # the last listing of kvmnet's nft table with nftables' generation then (host/nftables.py):
    # while the generation has not moved, observing returns it instead of listing again
    nft_seen: dict = field(default_factory=dict)
    # keys() of (this entries list, at this length): planning and apply ask for them per fact,
    # 1000s of times on a big topology; entries is only ever appended to or replaced
    _keys: tuple = field(default=(None, -1, frozenset()), init=False, repr=False, compare=False)
    _added: tuple = field(default=(None, -1, frozenset()), init=False, repr=False, compare=False)  # add()'s own set
    # the text itself once this process has it (None: not read yet), and the directory to read it from
    _source: str | None = field(default=None, repr=False, compare=False)
    _dir: str = field(default="", repr=False, compare=False)

    @property
    def source(self) -> str:
        if self._source is None:
            self._source = _read_source(self._dir, self.source_sha256)
        return self._source

    @source.setter
    def source(self, text: str) -> None:
        self._source, self.source_sha256 = text, source_digest(text)

    def keys(self) -> frozenset[str]:
        entries, n, keys = self._keys
        if entries is not self.entries or n != len(self.entries):
            keys = frozenset(k for k, _ in self.entries)
            self._keys = (self.entries, len(self.entries), keys)
        return keys

    def add(self, key: str, undo: dict | None) -> bool:
        # membership in a set kept in step with what add() appends: a write-ahead adds 1000s of
        # keys in a row, and rebuilding keys() after each made that quadratic (10,000: 3.6 s)
        entries, n, known = self._added
        if entries is not self.entries or n != len(self.entries):
            known = {k for k, _ in self.entries}
        if key in known:
            return False
        self.entries.append([key, undo])
        known.add(key)
        self._added = (self.entries, len(self.entries), known)
        return True

    def drop(self, key: str) -> None:
        self.drop_all((key,))

    def drop_all(self, keys) -> None:
        """drop() of each key, in one pass (destroy drops a 1000-tap link group at once)."""
        gone = set(keys)
        self.entries = [e for e in self.entries if e[0] not in gone]
        for key in gone:
            self.content.pop(key, None)
            self.elements.pop(key, None)

    def to_json(self) -> dict:
        return {"version": VERSION, "topology": self.topology, "file": self.file, "entries": self.entries,
                "uplinks": self.uplinks, "firewall_backend": self.firewall_backend,
                "networks": self.networks, "taps": self.taps, "content": self.content,
                **({"source_sha256": self.source_sha256} if self.source_sha256 else {}),
                **({"nft_seen": self.nft_seen} if self.nft_seen else {}),
                **({"elements": self.elements} if self.elements else {})}

    def copy(self) -> "Record":
        # ours: no check. A deep copy through marshal (plain values, as to_json makes them), ~3x
        # faster than through JSON (a 1000-tap record: ~4 ms); only ever written back as JSON
        out = Record.from_json(marshal.loads(marshal.dumps(self.to_json())), "")
        # the text itself, read now: a save of this record (a rollback's) may come after a save of
        # a new text removed the file that holds it
        out._source, out._dir = self.source, self._dir
        return out

    @classmethod
    def from_json(cls, data: dict, path: str, where: Where | None = None) -> "Record":
        """The record in `data`, checked against the closed schema (stepschema.py) when `where`
        says whose it is: nothing in it runs unless all of it is well-formed."""
        if where is not None:
            try:
                check_record(data, where, VERSION)
            except SchemaError as exc:
                raise CorruptRecord(path, str(exc)) from None
        out = cls(topology=data["topology"], file=data.get("file", ""), entries=[list(e) for e in data["entries"]],
                  uplinks=data.get("uplinks", {}), firewall_backend=data.get("firewall_backend"),
                  networks=data.get("networks", {}), taps=data.get("taps", {}), content=data.get("content", {}),
                  source_sha256=data.get("source_sha256", ""), nft_seen=data.get("nft_seen", {}),
                  elements=data.get("elements", {}), _dir=os.path.dirname(path))
        if "source" in data:  # records before source_sha256 kept the text inline; the next save moves it out
            out.source = data["source"]
        return out


class CorruptRecord(InputError):
    """A record kvmnet cannot trust to undo anything; it affects only its own topology."""

    def __init__(self, path: str, why: str):
        self.path, self.why = path, why
        super().__init__(f"{path}: record is corrupt: {why}; `kvmnet destroy --force FILE` removes what "
                         "kvmnet made from its names")


def path_for(state_root: str, topology: str) -> str:
    return os.path.join(state_root, topology, "state.json")


def load(state_root: str, topology: str) -> Record:
    """The topology's record (empty if none); CorruptRecord unless it is whole and well-formed,
    UnsafeState unless the state dir and the file are trusted (host/files.py)."""
    path = path_for(state_root, topology)
    text = statedir.read(state_root, topology, "state.json")
    if text is None:
        return Record(topology)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CorruptRecord(path, f"not JSON ({exc})") from None
    return Record.from_json(data, path, Where(topology, naming.state_dir_for(topology, state_root)))


def clear_stale(state_root: str, topology: str) -> None:
    """Temp files of a writer that was killed mid-write (callers hold the state lock, so no
    live writer can own one). Only `NAME.tmp.PID` regular files directly in the topology's own
    checked directory: never through a symlink, never anywhere else, never another user's."""
    dir_fd = files.open_dir(os.path.dirname(path_for(state_root, topology)))
    if dir_fd is None:
        return
    try:
        for name in os.listdir(dir_fd):
            if not files.is_temp_name(name):
                continue
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
    finally:
        os.close(dir_fd)


def save(state_root: str, record: Record) -> None:
    path = path_for(state_root, record.topology)
    if not record.entries and not record.uplinks:
        remove(state_root, record.topology)
        return
    # absolute: QEMU runs the hook (which may apply this file) from /, not from where apply ran
    record.file = os.path.abspath(record.file) if record.file else ""
    directory = os.path.dirname(path)
    record._dir = directory
    _write_source(directory, record)  # before the record that names it
    # compact: json's C encoder (indent= falls back to the pure-Python one, ~10x slower on a
    # 1000-tap record that destroy writes after every step)
    write_private(path, json.dumps(record.to_json()), durable=True)
    _drop_sources(directory, keep=record.source_sha256)
    _write_hook_index(directory, record)


SOURCE_FILE = "source-{}.toml"  # named by its digest: a new text never overwrites the one a saved record names


def source_digest(text: str) -> str:
    if not text:
        return ""
    if text is not _last_digest[0]:  # an apply digests its one text three times (~1 ms each, 1 MB)
        _last_digest[:] = text, hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _last_digest[1]


_last_digest: list = [None, ""]  # (a text, its digest): str is immutable, so `is` proves the same text


def _read_source(directory: str, digest: str) -> str:
    """The applied text a record names: "" when it names none, or when its file is missing or
    no longer that text (as a record of a kvmnet that kept no text: `try` then says so)."""
    if not digest or not directory:
        return ""
    text = files.read_private(os.path.join(directory, SOURCE_FILE.format(digest)))
    return text if text is not None and source_digest(text) == digest else ""


def _write_source(directory: str, record: Record) -> None:
    """The record's text, once: a file of that name is whole (written through a rename)."""
    digest = record.source_sha256
    if not digest or record._source is None or source_digest(record._source) != digest:
        return  # (a text this process could not read back: never a file whose name lies)
    path = os.path.join(directory, SOURCE_FILE.format(digest))
    if not os.path.lexists(path):
        write_private(path, record._source, durable=True)


def _drop_sources(directory: str, keep: str) -> None:
    """Remove every source file but `keep`'s (an earlier text, or one a killed save left)."""
    dir_fd = files.open_dir(directory)
    if dir_fd is None:
        return
    try:
        for name in os.listdir(dir_fd):
            if _is_source_name(name) and name != SOURCE_FILE.format(keep):
                os.unlink(name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


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
    text = "\n".join(lines) + "\n"
    path = os.path.join(directory, HOOK_INDEX)
    if _hooks_written.get(path) == (text, _identity(path)):  # this process wrote it so, and it is still there
        return
    write_private(path, text)
    _hooks_written[path] = (text, _identity(path))


# hook index path -> (the text this process last wrote there, that file's inode/mtime/size):
# destroy saves the record after every step, the hook index rarely changes
_hooks_written: dict[str, tuple] = {}


def _identity(path: str) -> tuple | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)


def _is_source_name(name: str) -> bool:
    head, _, tail = name.partition("-")
    return head == "source" and tail.endswith(".toml") and len(tail) == 64 + 5


def remove(state_root: str, topology: str) -> None:
    path = path_for(state_root, topology)
    for p in (path, os.path.join(os.path.dirname(path), HOOK_INDEX)):
        files.unlink_private(p)
        _hooks_written.pop(p, None)
    _drop_sources(os.path.dirname(path), keep="")
    files.remove_empty_dir(state_root, topology)  # not empty: lease files stay until destroy removes them


def all_records(state_root: str, exclude: str | None = None,
                corrupt: list[CorruptRecord] | None = None) -> list[Record]:
    """Every applied topology's record but `exclude`'s. A corrupt one raises CorruptRecord, or,
    given a `corrupt` list, goes there: one bad record must not block the other topologies."""
    out = []
    for name in statedir.topologies(state_root):
        if name == exclude:
            continue
        try:
            rec = load(state_root, name)
        except CorruptRecord as exc:
            if corrupt is None:
                raise
            corrupt.append(exc)
            continue
        if rec.entries or rec.uplinks or rec.file:
            out.append(rec)
    return out
