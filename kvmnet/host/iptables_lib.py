"""python-iptables glue for the iptables backend: the only code that imports `iptc` (on first
use: the import costs ~0.5 s), with the few libiptc pieces python-iptables does not expose,
decoding entries to iptables-save's argv, and encoding argv to rule blobs."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import time
from ipaddress import IPv4Network

from ..errors import HostError
from ..render.iptables import chain_names
from .iptables_probe import USE_NFT
from .iptables_read import split_save

LOCK_WAIT = 10.0  # seconds, like `iptables -w 10`
STANDARD = ("ACCEPT", "DROP", "RETURN", "QUEUE")


class Lib:
    """iptc, imported on first use, with the few pieces python-iptables does not expose."""

    _mod = None

    @classmethod
    def get(cls):
        if cls._mod is None:
            try:
                import iptc  # noqa: F401  (the slow import: ~0.5 s)
                import iptc.ip4tc as ip4tc
            except Exception as exc:  # ImportError, XTablesError, OSError from ctypes
                raise HostError(f"python-iptables cannot load libiptc/libxtables: {exc}; {USE_NFT}") from exc
            delete_num = ip4tc._libiptc.iptc_delete_num_entry  # not wrapped by python-iptables
            delete_num.restype = ctypes.c_int

            class ModuleTarget(iptc.Target):
                """A target extension (DNAT, REJECT, ...). python-iptables would otherwise ask every
                table whether the name is a chain, opening (and so creating) all five tables."""

                def _is_standard_target(self):
                    return False

            class ChainTarget(iptc.Target):
                """A jump to a user chain (same reason)."""

                def _is_standard_target(self):
                    return True

            cls._mod = (iptc, delete_num, ModuleTarget, ChainTarget)
        return cls._mod


def _addr(value: str) -> tuple[bool, str | None]:
    """python-iptables' "!a.b.c.d/m.m.m.m" -> (inverted, iptables-save's a.b.c.d/len) or None for any."""
    inv = value.startswith("!")
    addr, mask = value.lstrip("!").split("/")
    if mask == "0.0.0.0" and addr == "0.0.0.0" and not inv:
        return inv, None
    try:
        return inv, f"{addr}/{IPv4Network(f'{addr}/{mask}').prefixlen}"
    except ValueError:
        return inv, f"{addr}/{mask}"


def _params(ext, rule) -> list[str]:
    """An extension's options exactly as iptables-save prints them (its own save function)."""
    saved = getattr(ext, "_get_saved_buf", None)
    if saved is not None:
        buf = saved(rule.get_ip())
        return split_save(buf.decode() if isinstance(buf, bytes) else (buf or ""))
    out = []  # older python-iptables: parsed parameters (same text unless an option repeats)
    for key, values in ext.get_all_parameters().items():
        out += (["!", f"--{key}", *values[1:]] if values[:1] == ["!"] else [f"--{key}", *values])
    return out


def decode(table, entry) -> list[str]:
    """One libiptc entry as the argv iptables-save would print for it."""
    iptc, _, ModuleTarget, _ = Lib.get()
    from iptc.xtables import xt_entry_match, xt_entry_target
    rule = iptc.Rule()
    rule.entry = entry
    argv: list[str] = []
    for flag, value in (("-s", rule.src), ("-d", rule.dst)):
        inv, text = _addr(value)
        if text:
            argv += (["!"] if inv else []) + [flag, text]
    for flag, value in (("-i", rule.in_interface), ("-o", rule.out_interface)):
        if value:
            argv += (["!", flag, value[1:]] if value.startswith("!") else [flag, value])
    if entry.ip.proto or entry.ip.invflags & 0x40:  # IPT_INV_PROTO
        proto = rule.protocol.lstrip("!") if entry.ip.proto else "all"
        argv += (["!", "-p", proto] if entry.ip.invflags & 0x40 else ["-p", proto])
    if entry.ip.flags & 0x01:  # IPT_F_FRAG
        argv += (["!", "-f"] if entry.ip.invflags & 0x20 else ["-f"])
    entrysz = rule._entry_size()
    off = 0
    while entrysz + off < entry.target_offset:
        blob = ctypes.cast(ctypes.byref(entry.elems, off), ctypes.POINTER(xt_entry_match))[0]
        match = iptc.Match(rule, match=blob)
        argv += ["-m", match.name] + _params(match, rule)
        off += blob.u.match_size
    label = table.get_target(entry)
    label = label.decode() if isinstance(label, bytes) else (label or "")
    jump = "-g" if entry.ip.flags & 0x02 else "-j"  # IPT_F_GOTO
    if label in STANDARD or (label and table.is_chain(label)):
        argv += [jump, label]
    elif label:
        blob = ctypes.cast(ctypes.byref(entry, entry.target_offset), ctypes.POINTER(xt_entry_target))[0]
        argv += [jump, label] + _params(ModuleTarget(rule, target=blob), rule)
    return argv


_HEADER = {"-s": "src", "-d": "dst", "-i": "in_interface", "-o": "out_interface", "-p": "protocol"}


def _split(argv: list[str]) -> tuple[list, list]:
    """argv (as iptables-save prints it) -> ([(flag, value, inverted)], [(-m|-j|-g, name, [(option, values, inverted)])])."""
    header, exts, inv, i = [], [], False, 0
    while i < len(argv):
        tok = argv[i]
        if tok == "!":
            inv, i = True, i + 1
            continue
        if tok in _HEADER and i + 1 < len(argv):
            header.append((tok, argv[i + 1], inv))
            i += 2
        elif tok == "-f":
            header.append((tok, None, inv))
            i += 1
        elif tok in ("-m", "-j", "-g") and i + 1 < len(argv):
            exts.append((tok, argv[i + 1], []))
            i += 2
        elif tok.startswith("--") and exts:
            values, i = [], i + 1
            while i < len(argv) and argv[i] != "!" and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
            exts[-1][2].append((tok[2:], values, inv))
        else:
            raise HostError(f"cannot load iptables rule {' '.join(argv)!r}: unexpected {tok!r}")
        inv = False
    if not exts or exts[-1][0] == "-m" or sum(e[0] != "-m" for e in exts) != 1:
        raise HostError(f"cannot load iptables rule {' '.join(argv)!r}: it needs exactly one -j/-g, last")
    return header, exts


class Encoder:
    """argv -> the rule blob libiptc takes, for one table handle.

    Each distinct extension (a match or target with its options, on the rule's protocol) is
    built once through python-iptables (libxtables' parser and final check) and kept as bytes;
    a rule is then its ipt_entry header followed by those bytes. For 1000 port forwards (2000
    DNAT rules whose comment, addrtype and OUTPUT twins repeat) this makes a quarter of the
    python-iptables objects, and skips python-iptables' Rule.final_check(), which saves,
    resets and re-parses every extension of every rule.
    """

    def __init__(self, table):
        self.table = table
        self.cache: dict = {}

    def blob(self, argv: list[str]):
        iptc = Lib.get()[0]
        from iptc.ip4tc import ipt_entry
        from iptc.xtables import xt_align
        header, exts = _split(argv)
        rule = iptc.Rule()
        try:
            for flag, value, inv in header:
                if flag == "-f":
                    rule.entry.ip.flags |= 0x01  # IPT_F_FRAG
                    if inv:
                        rule.entry.ip.invflags |= 0x20  # IPT_INV_FRAG
                else:
                    setattr(rule, _HEADER[flag], ("!" if inv else "") + value)
            proto = (rule.entry.ip.proto, rule.entry.ip.invflags & 0x40)
            parts = []
            for kind, name, opts in exts:
                key = (kind == "-m", name, tuple((o, tuple(v), inv) for o, v, inv in opts), proto)
                if key not in self.cache:
                    self.cache[key] = self._build(rule, kind == "-m", name, opts)
                parts.append(self.cache[key])
        except HostError:
            raise
        except Exception as exc:  # ValueError, AttributeError, XTablesError from libxtables' parsers
            raise HostError(f"iptables cannot load {' '.join(argv)!r}: {exc}") from exc
        entry = rule.entry
        if exts[-1][0] == "-g":
            entry.ip.flags |= 0x02  # IPT_F_GOTO
        entrysz = xt_align(ctypes.sizeof(ipt_entry))
        matches = b"".join(parts[:-1])
        entry.target_offset = entrysz + len(matches)
        entry.next_offset = entrysz + len(matches) + len(parts[-1])
        head = ctypes.string_at(ctypes.addressof(entry), ctypes.sizeof(ipt_entry)).ljust(entrysz, b"\0")
        data = head + matches + parts[-1]
        return (ctypes.c_ubyte * len(data)).from_buffer_copy(data)

    def _build(self, rule, is_match: bool, name: str, opts: list) -> bytes:
        iptc, _, ModuleTarget, ChainTarget = Lib.get()
        if is_match:
            ext = iptc.Match(rule, name=name)
        elif name in STANDARD and not opts:
            ext = iptc.Target(rule, name=name)
        elif not opts and self.table.is_chain(name):
            ext = ChainTarget(rule, name=name)
        else:
            ext = ModuleTarget(rule, name=name)
        for opt, values, inv in opts:
            ext.parse(opt, (["!"] if inv else []) + values)
        ext._final_check()  # libxtables' check of this extension's options
        if is_match:
            return bytes(ext.match_buf)
        return ctypes.string_at(ctypes.addressof(ext.target), ext.size)


def entries(table, chain: str) -> list:
    out = []
    entry = table.first_rule(chain)
    while entry:
        out.append(entry)
        entry = table.next_rule(entry)
    return out


def labels(table, chain: str) -> list[str]:
    """The target of each rule of `chain`, in order ("" for none)."""
    out = []
    for entry in entries(table, chain):
        label = table.get_target(entry)
        out.append(label.decode() if isinstance(label, bytes) else (label or ""))
    return out


def jumps(table, owned: set[str]) -> list[tuple[str, int, str, object]]:
    """(built-in chain, position, target chain, entry) of every jump to one of `owned`."""
    out = []
    for chain in table.chains:
        if not table.builtin_chain(chain.name):
            continue
        for pos, entry in enumerate(entries(table, chain.name)):
            label = table.get_target(entry)
            label = label.decode() if isinstance(label, bytes) else (label or "")
            if label in owned:
                out.append((chain.name, pos, label, entry))
    return out


def read_iptc(tables: list[str], prefix: str) -> dict:
    """The same snapshot as _read_save, through libiptc (kvmnet's chains and its jumps only)."""
    owned = chain_names(prefix)
    snap = {}
    for name in tables:
        with table_handle(name) as table:
            mine = {c for c, (_, t, _) in owned.items() if t == name}
            chains = {c: [decode(table, e) for e in entries(table, c)] for c in sorted(mine) if table.is_chain(c)}
            builtins: dict = {}
            for builtin, _, _, entry in jumps(table, mine):
                builtins.setdefault(builtin, []).append(decode(table, entry))
            snap[name] = {"chains": chains, "builtins": builtins}
    return snap


@contextlib.contextmanager
def table_handle(name: str):
    """A fresh libiptc snapshot of `name` with autocommit off; pending changes are discarded and
    autocommit restored on the way out (commit explicitly)."""
    iptc = Lib.get()[0]
    try:
        table = iptc.Table(name)  # cached per process: refreshed below for a current snapshot
        old = table.autocommit
        table.autocommit = False
        table.refresh()
    except iptc.IPTCError as exc:
        raise HostError(f"legacy iptables cannot open the {name} table: {exc} "
                        f"(kernel module iptable_{name} missing?); {USE_NFT}") from exc
    try:
        yield table
    finally:
        table.autocommit = False
        try:
            table.refresh()  # drop anything not committed; never commit on the way out
        finally:
            table.autocommit = old


@contextlib.contextmanager
def xtables_lock(wait: float = LOCK_WAIT):
    """The lock iptables-legacy takes (`iptables -w`), so no other writer interleaves."""
    path = os.environ.get("XTABLES_LOCKFILE", "/run/xtables.lock")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HostError(f"another program has held the xtables lock ({path}) for {wait:.0f} s; try again")
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
