"""python-iptables glue for the iptables backend: the only code that imports `iptc` (on first
use: the import costs ~0.5 s), with the few libiptc pieces python-iptables does not expose,
decoding entries to iptables-save's argv, and encoding argv to rule blobs. Both families: a
table handle is iptc.Table (libip4tc) or iptc.Table6 (libip6tc), and the rule, entry layout
and flag bits follow it (ip6t_entry has no fragment flag and its goto bit is 0x04)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import time
from ipaddress import IPv4Network, IPv6Network

from ..errors import HostError
from ..render.iptables import chain_names
from . import iptables_nat6
from .iptables_probe import USE_NFT
from .iptables_read import split_save

LOCK_WAIT = 10.0  # seconds, like `iptables -w 10`
STANDARD = ("ACCEPT", "DROP", "RETURN", "QUEUE")
GOTO = {4: 0x02, 6: 0x04}  # IPT_F_GOTO, IP6T_F_GOTO
INV_PROTO = 0x40  # IPT_INV_PROTO = IP6T_INV_PROTO
# ip6tables-save names protocol 58 as /etc/protocols does; python-iptables calls it icmpv6
PROTO_NAMES = {58: "ipv6-icmp"}


class Lib:
    """iptc, imported on first use, with the few pieces python-iptables does not expose."""

    _mod = None

    @classmethod
    def get(cls):
        if cls._mod is None:
            try:
                import iptc  # noqa: F401  (the slow import: ~0.5 s; loads libip4tc and libip6tc)
            except Exception as exc:  # ImportError, XTablesError, OSError from ctypes
                raise HostError(f"python-iptables cannot load libiptc/libxtables: {exc}; {USE_NFT}") from exc

            class ModuleTarget(iptc.Target):
                """A target extension (DNAT, REJECT, ...). python-iptables would otherwise ask every
                table whether the name is a chain, opening (and so creating) all five tables."""

                def _is_standard_target(self):
                    return False

            class ChainTarget(iptc.Target):
                """A jump to a user chain (same reason)."""

                def _is_standard_target(self):
                    return True

            cls._mod = (iptc, ModuleTarget, ChainTarget)
        return cls._mod


def family_of(table) -> int:
    return 6 if isinstance(table, Lib.get()[0].Table6) else 4


def delete_num(table, builtin: str, pos: int) -> bool:
    """Delete rule `pos` (0-based) of a built-in chain: python-iptables wraps this libiptc call
    (iptc_delete_num_entry / ip6tc_delete_num_entry) but exposes no method for it."""
    return table._iptc.iptc_delete_num_entry(builtin.encode(), ctypes.c_uint(pos), table._handle) == 1


def _addr(value: str) -> tuple[bool, str | None]:
    """python-iptables' "!a.b.c.d/m.m.m.m" (IPv6: "!addr/len") -> (inverted, iptables-save's
    address/len) or None for any."""
    inv = value.startswith("!")
    addr, mask = value.lstrip("!").split("/")
    if mask in ("0.0.0.0", "0") and addr in ("0.0.0.0", "::") and not inv:
        return inv, None
    if ":" in addr:
        return inv, str(IPv6Network(f"{addr}/{mask}", strict=False))
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
    iptc, ModuleTarget, _ = Lib.get()
    from iptc.xtables import xt_entry_match, xt_entry_target
    family = family_of(table)
    rule = iptc.Rule6() if family == 6 else iptc.Rule()
    rule.entry = entry
    ip = rule.get_ip()
    argv: list[str] = []
    for flag, value in (("-s", rule.src), ("-d", rule.dst)):
        inv, text = _addr(value)
        if text:
            argv += (["!"] if inv else []) + [flag, text]
    for flag, value in (("-i", rule.in_interface), ("-o", rule.out_interface)):
        if value:
            name = value.lstrip("!")
            if family == 6 and getattr(ip, _MASK[flag]) != _iface_mask(name).rstrip(b"\0"):  # (ctypes: up to a NUL)
                name += "?"  # (the mask python-iptables wrote: a rule that matches other names, drift)
            argv += (["!", flag, name] if value.startswith("!") else [flag, name])
    if ip.proto or ip.invflags & INV_PROTO:
        proto = PROTO_NAMES.get(ip.proto) or rule.protocol.lstrip("!") if ip.proto else "all"
        argv += (["!", "-p", proto] if ip.invflags & INV_PROTO else ["-p", proto])
    if family == 4 and ip.flags & 0x01:  # IPT_F_FRAG
        argv += (["!", "-f"] if ip.invflags & 0x20 else ["-f"])
    entrysz = rule._entry_size()
    off = 0
    while entrysz + off < entry.target_offset:
        blob = ctypes.cast(ctypes.byref(entry.elems, off), ctypes.POINTER(xt_entry_match))[0]
        match = iptc.Match(rule, match=blob)
        argv += ["-m", match.name] + _params(match, rule)
        off += blob.u.match_size
    label = table.get_target(entry)
    label = label.decode() if isinstance(label, bytes) else (label or "")
    jump = "-g" if ip.flags & GOTO[family] else "-j"
    if label in STANDARD or (label and table.is_chain(label)):
        argv += [jump, label]
    elif label and family == 6 and label in iptables_nat6.REVISION:  # libxtables cannot (iptables_nat6.py)
        data = ctypes.string_at(ctypes.addressof(entry) + entry.target_offset + iptables_nat6.HEADER, 40)
        argv += [jump, label] + iptables_nat6.target_args(label, data)
    elif label:
        blob = ctypes.cast(ctypes.byref(entry, entry.target_offset), ctypes.POINTER(xt_entry_target))[0]
        argv += [jump, label] + _params(ModuleTarget(rule, target=blob), rule)
    return argv


_HEADER = {"-s": "src", "-d": "dst", "-i": "in_interface", "-o": "out_interface", "-p": "protocol"}
_MASK = {"-i": "iniface_mask", "-o": "outiface_mask"}


def _iface_mask(name: str) -> bytes:
    """The interface mask ip6tables writes: 0xff over the name and its NUL (over the prefix
    before a trailing '+'). python-iptables' Rule6 writes 0x01 bytes, and the kernel compares
    (name ^ rule) & mask: `-i kv6c` matched kv6a, its REJECT refusing a routed network's traffic."""
    length = len(name) - 1 if name.endswith("+") else len(name) + 1
    return (b"\xff" * length).ljust(16, b"\0")


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
        from iptc.xtables import xt_align
        header, exts = _split(argv)
        family = family_of(self.table)
        rule = iptc.Rule6() if family == 6 else iptc.Rule()
        ip = rule.get_ip()
        try:
            for flag, value, inv in header:
                if flag == "-f" and family == 4:
                    ip.flags |= 0x01  # IPT_F_FRAG
                    if inv:
                        ip.invflags |= 0x20  # IPT_INV_FRAG
                elif flag == "-f":
                    raise HostError(f"ip6tables has no -f: {' '.join(argv)!r}")
                else:
                    if flag == "-p":
                        value = next((str(n) for n, name in PROTO_NAMES.items() if name == value), value)
                    setattr(rule, _HEADER[flag], ("!" if inv else "") + value)
                    if flag in _MASK and family == 6:
                        setattr(ip, _MASK[flag], _iface_mask(value))
            proto = (ip.proto, ip.invflags & INV_PROTO)
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
            ip.flags |= GOTO[family]
        size = ctypes.sizeof(type(entry))  # ipt_entry or ip6t_entry
        entrysz = xt_align(size)
        matches = b"".join(parts[:-1])
        entry.target_offset = entrysz + len(matches)
        entry.next_offset = entrysz + len(matches) + len(parts[-1])
        head = ctypes.string_at(ctypes.addressof(entry), size).ljust(entrysz, b"\0")
        data = head + matches + parts[-1]
        return (ctypes.c_ubyte * len(data)).from_buffer_copy(data)

    def _build(self, rule, is_match: bool, name: str, opts: list) -> bytes:
        iptc, ModuleTarget, ChainTarget = Lib.get()
        if not is_match and name in iptables_nat6.REVISION and family_of(self.table) == 6:
            return iptables_nat6.target_blob(name, opts)  # libxtables cannot (see that module)
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


def read_iptc(tables: list[str], prefix: str, family: int = 4) -> dict:
    """The same snapshot as read_save, through libiptc (kvmnet's chains and its jumps only)."""
    owned = chain_names(prefix, family)
    snap = {}
    for name in tables:
        with table_handle(name, family) as table:
            mine = {c for c, (_, t, _) in owned.items() if t == name}
            chains = {c: [decode(table, e) for e in entries(table, c)] for c in sorted(mine) if table.is_chain(c)}
            builtins: dict = {}
            for builtin, _, _, entry in jumps(table, mine):
                builtins.setdefault(builtin, []).append(decode(table, entry))
            snap[name] = {"chains": chains, "builtins": builtins}
    return snap


@contextlib.contextmanager
def table_handle(name: str, family: int = 4):
    """A fresh libiptc snapshot of `name` (an ip6 table for family 6) with autocommit off;
    pending changes are discarded and autocommit restored on the way out (commit explicitly)."""
    iptc = Lib.get()[0]
    try:
        # cached per process: refreshed below for a current snapshot
        table = iptc.Table6(name) if family == 6 else iptc.Table(name)
        old = table.autocommit
        table.autocommit = False
        table.refresh()
    except iptc.IPTCError as exc:
        tool, module = ("iptables", "iptable") if family == 4 else ("ip6tables", "ip6table")
        raise HostError(f"legacy {tool} cannot open the {name} table: {exc} "
                        f"(kernel module {module}_{name} missing?); {USE_NFT}") from exc
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
