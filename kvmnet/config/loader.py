"""TOML topology file -> model.Topology, or InputError listing every problem with file:line: key.

Pure: reads the file it is given and nothing else. Checks that need the host (routes, the
uplink's existence) live in engine/hostcheck.py and run at plan time, before any change.
The steps, in order: networks.py and guests.py read their tables, derive.py fills in MACs and
taps, crosscheck.py checks what spans them, forwards.py reads the forwards (they name guests).
"""

from __future__ import annotations

import os
import re
import tomllib

from .. import naming
from ..errors import InputError, Problem
from ..model import Topology
from .crosscheck import cross_check
from .derive import derive
from .forwards import with_forwards
from .guests import guest
from . import hosts as multihost
from .networks import network
from .tomlpos import format_path, key_lines, line_of
from .tomlread import Reader

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_GUESTS = 4096
MAX_NETWORKS = 256
_TOPOLOGY_NAME = re.compile(r"[A-Za-z0-9_]{1,24}", re.ASCII)


def load_text(text: str, file: str, topology_name: str | None = None) -> Topology:
    data, r = _parse(text, file)
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
    multihost.check(r, overlay, networks, guests)
    networks = with_forwards(r, networks, nets_raw, guests)
    if r.problems:
        raise InputError(r.problems)
    return Topology(name, file, tuple(networks), tuple(guests), firewall or "auto", overlay=overlay, source=text)


def _parse(text: str, file: str) -> tuple[dict, Reader]:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError([Problem(file, None, "", f"not valid Unicode text ({exc.reason} at {exc.start})")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise InputError([Problem(file, int(line.group(1)) if line else None, "", f"TOML syntax error: {exc}")]) from None
    return data, Reader(file, text)


def load(path: str) -> Topology:
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise InputError([Problem(path, None, "", f"file is {size} bytes; topology files are at most {MAX_FILE_BYTES}")])
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError([Problem(path, None, "", exc.strerror or str(exc))]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(path, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    return load_text(text, path)


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
    if mode & 0o002:
        return [f"{path}: warning: the file is world-writable; anyone on this host can change what kvmnet applies as root"]
    return []
