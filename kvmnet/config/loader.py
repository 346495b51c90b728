"""TOML topology file -> model.Topology, or InputError listing every problem with file:line: key.

Pure: reads the file it is given and nothing else. Checks that need the host (routes, the
uplink's existence) live in engine/hostcheck.py and run at plan time, before any change.
The steps, in order: networks.py and guests.py read their tables, derive.py fills in MACs and
taps, crosscheck.py checks what spans them, forwards.py reads the forwards (they name guests).
"""

from __future__ import annotations

import os
import re
import stat

from .. import gcpause, naming
from ..errors import InputError, Problem
from ..model import Topology
from .tomlpos import format_path, key_lines, line_of

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_GUESTS = 4096
MAX_NETWORKS = 256
_TOPOLOGY_NAME = re.compile(r"[A-Za-z0-9_]{1,24}", re.ASCII)


def load_text(text: str, file: str, topology_name: str | None = None) -> Topology:
    data, r = _parse(text, file)
    return _topology(data, r, text, file, topology_name)


def _topology(data: dict, r: "Reader", text: str, file: str, topology_name: str | None = None) -> Topology:
    """The topology a parsed file describes, or InputError with every problem found."""
    # here, not at the top: a re-apply of a cached file imports this module and needs none of them
    from . import hosts as multihost
    from .attach import check_bandwidth
    from .crosscheck import backend_limits, cross_check
    from .derive import derive
    from .forwards import with_forwards
    from .guests import guest
    from .networks import network

    r.table(data, (), ("name", "firewall", "hosts", "networks", "guests"))
    name = r.get(data, "name", (), str, None)
    if name is None:
        name = topology_name or naming.topology_name_from_path(file)
    if not _TOPOLOGY_NAME.fullmatch(name):
        r.error(("name",), f"topology name {name!r} must be 1-24 letters, digits or '_' (set name = \"...\" in the file)")
    firewall = r.get(data, "firewall", (), str, "auto")
    if firewall not in (None, "auto", "nftables", "iptables"):
        r.error(("firewall",), f"{firewall!r} must be auto, nftables or iptables")
    nets_raw = r.get(data, "networks", (), dict, {}) or {}
    guests_raw = r.get(data, "guests", (), dict, {}) or {}
    if len(nets_raw) > MAX_NETWORKS or len(guests_raw) > MAX_GUESTS:
        raise InputError([Problem(file, None, "", f"too large: at most {MAX_NETWORKS} networks and {MAX_GUESTS} guests")])
    nets_raw, guests_raw, overlay = multihost.take(r, data, nets_raw, guests_raw)
    networks = [n for key, raw in nets_raw.items() if (n := network(r, key, raw, ("networks", key))) is not None]
    guests = [g for key, raw in guests_raw.items() if (g := guest(r, key, raw, ("guests", key))) is not None]
    guests = derive(name, networks, guests)
    cross_check(r, networks, guests)
    check_bandwidth(r, networks, guests)
    multihost.check(r, overlay, networks, guests)
    networks = with_forwards(r, networks, nets_raw, guests)
    backend_limits(r, firewall, networks)
    if r.problems:
        raise InputError(r.sorted_problems())
    return Topology(name, file, tuple(networks), tuple(guests), firewall or "auto", overlay=overlay, source=text)


def _parse(text: str, file: str) -> tuple[dict, "Reader"]:
    from . import tomlfast
    from .tomlread import Reader

    _utf8(text, file)
    data = tomlfast.loads(text)  # the common shape, fast; None: tomllib decides (and words any error)
    return (_tomllib(text, file) if data is None else data), Reader(file, text)


def _utf8(text: str, file: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError([Problem(file, None, "", f"not valid Unicode text ({exc.reason} at {exc.start})")]) from None


def _tomllib(text: str, file: str) -> dict:
    import tomllib  # (only here: the fast path's files never need it)

    try:
        return tomllib.loads(text)
    except RecursionError:  # tomllib recurses per nesting level: [[[[... overflows the stack
        raise InputError([Problem(file, None, "", "arrays or inline tables are nested too deeply "
                                  "(a topology needs a few levels)")]) from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise InputError([Problem(file, int(line.group(1)) if line else None, "", f"TOML syntax error: {exc}")]) from None
    except ValueError:  # an integer past Python's limit for int(str) (4300 digits)
        long = re.search(r"[0-9_]{4000}", text)
        line = text.count("\n", 0, long.start()) + 1 if long else None
        raise InputError([Problem(file, line, "", "TOML: a number of more than 4300 digits (Python reads no longer ones)")]) from None


def load(path: str) -> Topology:
    return load_bytes(read_file(path), path)


def load_bytes(raw: bytes, path: str) -> Topology:
    """load() of the bytes read from `path` (engine/topocache.py hashes them first)."""
    text = _decoded(raw, path)
    with gcpause.paused():  # ~100,000 dicts, tuples and model objects, none in a reference cycle
        return load_text(text, path)


def load_edited(raw: bytes, path: str, previous: "Parsed | None") -> tuple[Topology, "Parsed | None"]:
    """load_bytes(), parsing again only what changed since `previous` (the file as an earlier
    run parsed it, config/tomledit.py); and the file as parsed now, for its next edit (None:
    a file that is parsed whole every time). Every value is validated as always."""
    from . import tomledit
    from .tomlread import Reader

    text = _decoded(raw, path)
    with gcpause.paused():
        parsed = tomledit.reparse(previous, text) if previous is not None else None
        if parsed is not None:
            try:
                return _topology(parsed.data, Reader(path, text), text, path), parsed
            except InputError:
                pass  # the whole parse below words the problems, so they read as they always have
        data, parsed = tomledit.parse(text)
        if data is None:  # tomlfast is unsure: tomllib reads it (and words any error)
            data = _tomllib(text, path)
        return _topology(data, Reader(path, text), text, path), parsed


def _decoded(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(path, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


def read_file(path: str) -> bytes:
    """At most MAX_FILE_BYTES of a regular file. A FIFO would block the open, a device
    (/dev/zero) reads forever with st_size 0: stat first, open without blocking, check the
    open file again (it may have been swapped since the stat), and never read past the cap."""
    if not path.isprintable():  # (a record and QEMU's hook index keep it one line each: no \n, \u2028, ...)
        raise InputError([Problem(repr(path)[1:-1], None, "", "a topology file's path may not contain control characters")])
    try:
        _must_be_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            _must_be_regular(path, st.st_mode)
            _must_fit(path, st.st_size)
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError([Problem(path, None, "", exc.strerror or str(exc))]) from None
    if len(raw) > MAX_FILE_BYTES:  # st_size said less: a file that grew, or one of /proc's
        raise InputError([Problem(path, None, "", f"file has more than {MAX_FILE_BYTES} bytes; topology files are at most {MAX_FILE_BYTES}")])
    return raw


def _must_be_regular(path: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise InputError([Problem(path, None, "", f"is {kind}; a topology file must be a regular file")])


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _must_fit(path: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise InputError([Problem(path, None, "", f"file is {size} bytes; topology files are at most {MAX_FILE_BYTES}")])


def locate(file: str, items: list[tuple[tuple, str]]) -> list[Problem]:
    """Problems for (key path, reason) pairs found after loading (e.g. host conflicts)."""
    try:
        with open(file, encoding="utf-8") as f:
            lines = key_lines(f.read())
    except OSError:
        lines = {}
    return [Problem(file, line_of(lines, path), format_path(path), reason) for path, reason in items]


def file_warnings(path: str) -> list[str]:
    """Things about the file itself an admin should hear about before applying it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return []
    if stat.S_ISREG(mode) and mode & 0o002:  # /dev/null is 0666 too: load() refuses it anyway
        return [f"{path}: warning: the file is world-writable; anyone on this host can change what kvmnet applies as root"]
    return []
