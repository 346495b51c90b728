"""The last validated topology of each file, kept in the state dir, so that re-applying an
unchanged 10,000-forward file does not parse and validate it again (~40 ms of a ~270 ms no-op).

<state-dir>/topology-<sha256 of the file's absolute path>.json (a file, not a directory: the
state dir's directories are topologies) starts with a header line, {"key", "name"}: the key is
the sha256 of the bytes the entry was made from, the path as given, kvmnet's version, a stamp of
the code that validated it and the Python whose marshal format the rest is in; the name is the
topology's. The header alone answers a miss (an edited file: its 1 MB body is not parsed) and
`destroy`, which needs only the name. The rest is the topology in config/topojson.py's closed
form as marshal writes it (format 2: plain values, no back-references; ~4x faster to write than
JSON, and an edited 10,000-forward file is kept anew on every apply); whatever it holds,
config/topojson.py checks every value. The entry is used only when its key matches this read of
the file and this kvmnet, and only if the state dir's trust rules hold for it (host/files.py:
owned by root or this user, writable by nobody else, no symlinks); anything else (missing,
untrusted, unreadable, corrupt, stale) is a miss: the file is loaded as always.
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
        topo = _cached(slot, key, raw)
    if topo is None:
        topo = loader.load_bytes(raw, path)
        _missed[slot] = (key, topo)
    return topo


_missed: dict = {}  # slot -> (key, topology) loaded by this process and not found in its slot


def keep_loaded() -> None:
    """Write what load() missed (under the exclusive state lock: the state dir exists)."""
    for slot, (key, topo) in list(_missed.items()):
        try:
            header = json.dumps({"key": key, "name": topo.name}).encode()
            with gcpause.paused():
                body = marshal.dumps(topojson.encode(topo), _MARSHAL_FORMAT)
            files.write_private(slot, header + b"\n" + body)
        except (KvmnetError, OSError):
            pass  # a cache that cannot be written is a cache that misses next time
        del _missed[slot]


def cached_name(path: str, state_root: str) -> str | None:
    """The name of the topology in `path` when the cache holds this very file, else None."""
    header = _header(cache_path(state_root, path), _key(path, loader.read_file(path)))
    return header[0] if header else None


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


def _header(slot: str, key: dict) -> tuple[str, bytes] | None:
    """(the topology's name, the slot's body) when the slot is trusted and its header has `key`."""
    try:
        data = files.read_private(slot, raw=True)
    except (KvmnetError, OSError):  # untrusted or unreadable: as if there were none
        return None
    if data is None:
        return None
    head, _, body = data.partition(b"\n")
    try:
        data = json.loads(head)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) != {"key", "name"} or data["key"] != key \
            or not isinstance(data["name"], str):
        return None
    return data["name"], body


def _cached(slot: str, key: dict, raw: bytes) -> Topology | None:
    header = _header(slot, key)
    if header is None:
        return None
    try:
        topo = topojson.decode(marshal.loads(header[1]), raw.decode("utf-8"))
    # not marshal data (a damaged length may ask for more memory than there is), not a topology
    # of this model (topojson.Unfit): a miss, the file is loaded as always
    except (ValueError, EOFError, TypeError, OverflowError, MemoryError, RecursionError):
        return None
    return topo if topo.name == header[0] else None
