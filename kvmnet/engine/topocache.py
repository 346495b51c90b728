"""The last validated topology of each file, kept in the state dir, so that re-applying an
unchanged 10,000-forward file does not parse and validate it again (~40 ms of a ~270 ms no-op).

<state-dir>/topology-<sha256 of the file's absolute path>.json (a file, not a directory: the
state dir's directories are topologies) starts with a header line, {"key", "name", "edit"}: the
key is the sha256 of the bytes the entry was made from, the path as given, kvmnet's version, a
stamp of the code that validated it and the Python whose marshal format the rest is in; the name
is the topology's. The header alone answers `destroy`, which needs only the name. Then the
topology in config/topojson.py's closed form as marshal writes it (format 2: plain values, no
back-references; ~4x faster to write than JSON, and an edited 10,000-forward file is kept anew
on every apply); whatever it holds, config/topojson.py checks every value. At byte `edit` of
that body (0: none) the file's text as parsed (config/tomledit.py, marshal format 4: its dicts
share their keys), so that an edited file is parsed again only where the edit touched it: used
when the key matches all but the file's sha256; validation runs in full as always.
The entry is used only when its key matches this read of the file and this kvmnet, and only if
the state dir's trust rules hold for it (host/files.py: owned by root or this user, writable by
nobody else, no symlinks); anything else (missing, untrusted, unreadable, corrupt, stale) is a
miss: the file is loaded as always.
A file with a problem is never kept, so its FILE:LINE messages are the loader's, every time.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import sys

from .. import gcpause
from ..config import loader, topojson
from . import statedir
from ..errors import KvmnetError
from ..host import files
from ..model import Topology

# the modules whose code decides what a file means: an edit to any of them (a development
# tree, an upgrade that kept the version) is a new stamp
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CODE = ("model.py", "naming.py", "ifname.py", "errors.py", "config")
_stamp: list = []


def load(path: str, state_root: str) -> Topology:
    """config.load(path), from the cache when it holds this file. A miss is remembered for
    keep_loaded(), which a successful apply calls under the exclusive state lock (other verbs,
    a failed apply, and a no-op apply that hit write nothing)."""
    raw = loader.read_file(path)
    key, slot = _key(path, raw), cache_path(state_root, path)
    with gcpause.paused():
        entry = _entry(slot)
        topo = _cached(entry, key, raw)
        previous = _previous(entry, key) if topo is None else None
    if topo is None:
        topo, parsed = loader.load_edited(raw, path, previous)
        _missed[slot] = (key, topo, parsed)
    return topo


_missed: dict = {}  # slot -> (key, topology, its file as parsed) loaded by this process and not found in its slot


def keep_loaded() -> None:
    """Write what load() missed (under the exclusive state lock: the state dir exists)."""
    for slot, (key, topo, parsed) in list(_missed.items()):
        try:
            with gcpause.paused():
                body = marshal.dumps(topojson.encode(topo), _MARSHAL_FORMAT)
                edit = _dumped(parsed)
            header = json.dumps({"key": key, "name": topo.name, "edit": len(body) if edit else 0}).encode()
            files.write_private(slot, b"".join((header, b"\n", body, edit)))  # (one copy of ~3 MB, not two)
        except (KvmnetError, OSError):
            pass  # a cache that cannot be written is a cache that misses next time
        del _missed[slot]


def _dumped(parsed) -> bytes:
    try:
        return marshal.dumps(parsed.dump(), 4) if parsed is not None else b""
    except ValueError:  # a value marshal has no format for (tomllib's dates): parsed whole next time
        return b""


def cached_name(path: str, state_root: str) -> str | None:
    """The name of the topology in `path` when the cache holds this very file, else None."""
    entry = _entry(cache_path(state_root, path))
    return entry[0]["name"] if entry and entry[0]["key"] == _key(path, loader.read_file(path)) else None


_MARSHAL_FORMAT = 2


def _key(path: str, raw: bytes) -> dict:
    return {"sha256": hashlib.sha256(raw).hexdigest(), "path": path, "kvmnet": _version(), "code": code_stamp(),
            "python": f"{sys.version}; marshal {_MARSHAL_FORMAT}"}


def forget(state_root: str, path: str) -> None:
    """destroy leaves nothing of the topology in the state dir, its kept file included."""
    _missed.pop(cache_path(state_root, path), None)
    files.unlink_private(cache_path(state_root, path))


def _version() -> str:
    return sys.modules[__name__.split(".")[0]].__version__  # the package, imported before any of it


cache_path = statedir.topology_cache


def code_stamp() -> str:
    if not _stamp:
        parts = []
        for name in _CODE:
            full = os.path.join(_PACKAGE, name)
            paths = [os.path.join(full, f) for f in sorted(os.listdir(full)) if f.endswith(".py")] \
                if os.path.isdir(full) else [full]
            for p in paths:
                st = os.stat(p)
                parts.append(f"{os.path.relpath(p, _PACKAGE)}:{st.st_size}:{st.st_mtime_ns}")
        _stamp.append(hashlib.sha256("\n".join(parts).encode()).hexdigest())
    return _stamp[0]


def _entry(slot: str) -> tuple[dict, bytes] | None:
    """(the slot's header, its body) when the slot is trusted and its header well-formed."""
    try:
        data = files.read_private(slot, raw=True)
    except (KvmnetError, OSError):  # untrusted or unreadable: as if there were none
        return None
    if data is None:
        return None
    head, _, body = data.partition(b"\n")
    try:
        header = json.loads(head)
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict) or set(header) != {"key", "name", "edit"} or not isinstance(header["name"], str) \
            or not isinstance(header["key"], dict) or type(header["edit"]) is not int:
        return None
    return header, body


def _cached(entry: tuple[dict, bytes] | None, key: dict, raw: bytes) -> Topology | None:
    if entry is None or entry[0]["key"] != key:
        return None
    try:  # (marshal.loads reads the topology and ignores the parsed text after it)
        topo = topojson.decode(marshal.loads(entry[1]), raw.decode("utf-8"))
    # not marshal data (a damaged length may ask for more memory than there is), not a topology
    # of this model (topojson.Unfit): a miss, the file is loaded as always
    except (ValueError, EOFError, TypeError, OverflowError, MemoryError, RecursionError):
        return None
    return topo if topo.name == entry[0]["name"] else None


def _previous(entry: tuple[dict, bytes] | None, key: dict):
    """The kept file as parsed, when it is this file as this kvmnet parsed it before an edit."""
    if entry is None or not 0 < entry[0]["edit"] < len(entry[1]) \
            or {**entry[0]["key"], "sha256": ""} != {**key, "sha256": ""}:
        return None
    from ..config import tomledit

    try:
        return tomledit.undump(marshal.loads(memoryview(entry[1])[entry[0]["edit"]:]))
    except (ValueError, EOFError, TypeError, OverflowError, MemoryError, RecursionError):
        return None
