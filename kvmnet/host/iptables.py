"""Firewall executor and observer for the iptables backend (legacy xtables, through python-iptables).

The only module that imports `iptc`, and only when it must write: `import iptc` costs about half
a second, so observing (every plan, check and no-op apply) reads `iptables-legacy-save` instead,
and only tables the kernel already has (/proc/net/ip_tables_names), so looking never creates
one. iptc is the fallback reader where iptables-legacy-save is not installed.

Writing (`firewall.apply`), per table (raw, filter, nat), holding the xtables lock that
iptables-legacy itself takes (/run/xtables.lock, or $XTABLES_LOCKFILE), on one libiptc
snapshot with autocommit off:
  - create missing kvmnet chains; flush and refill only those whose rules differ, so counters
    of unchanged chains survive and a table that is already right is not written at all;
  - keep exactly one jump per built-in chain, `-m comment --comment kvmnet -j <chain>`,
    inserted at position 1; remove any other jump to a kvmnet chain;
  - delete kvmnet chains the ruleset no longer has;
  - commit once (one IPT_SO_SET_REPLACE).
Jumps go first in the built-in chain, as libvirt's do: kvmnet's chains only match kvmnet's
bridges, subnets and forwarded ports, and for that traffic the topology's decisions (the
rejects that keep the WAN out of a NAT subnet, the DHCP/DNS accepts, the forwards) must hold
whatever else the chain holds: a foreign `-A FORWARD -j ACCEPT`, a DROP policy, an earlier
DNAT. nft gets this from independent base chains; in one iptables chain only order gives it.
A later foreign insert above the jump is not drift (the jump's position is not checked), so
kvmnet never fights another tool for the top slot.

Only chains named exactly <prefix>-{GRD,FWD,INP,PRE,OUT,POST} and jump rules whose target is
one of them are ever touched; never a policy, never another rule. Tables are committed one by
one (legacy iptables has no cross-table transaction): a failure part-way raises, and apply's
rollback restores the saved previous chains (or deletes them).

observe() judges the chains from their own comments, "kvmnet <digest> <n>/<total>"
(render/iptables.py): intact means every rule of every kvmnet chain carries the same digest
and total, each chain holds exactly its <n> rules, the chains add up to <total>, and each has
exactly one jump from its built-in chain.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gzip
import importlib.util
import os
import platform
import shutil
import subprocess
import time
from ipaddress import IPv4Network

from ..errors import HostError
from ..render.iptables import (TABLES, IptRuleset, chain_names, jump_rule, parse_comment, rule_comment)

LOCK_WAIT = 10.0  # seconds, like `iptables -w 10`
STANDARD = ("ACCEPT", "DROP", "RETURN", "QUEUE")
_CONFIG = {"filter": "CONFIG_IP_NF_FILTER", "nat": "CONFIG_IP_NF_NAT", "raw": "CONFIG_IP_NF_RAW"}
USE_NFT = "use `--firewall nftables` (or firewall = \"nftables\" in the topology)"


# ---------------------------------------------------------------- can this host use it at all

def unusable_reason() -> str | None:
    """Why the iptables backend must not be used here, or None. Cheap: no `import iptc`."""
    problem = _nft_conflict()
    if problem:
        return problem
    if importlib.util.find_spec("iptc") is None:
        return f"the iptables backend needs python-iptables (pip install python-iptables), which is not installed; {USE_NFT}"
    import ctypes.util
    if ctypes.util.find_library("ip4tc") is None and ctypes.util.find_library("iptc") is None:
        return ("the iptables backend needs libip4tc (legacy iptables' library, from the iptables package), "
                f"which python-iptables cannot find; {USE_NFT}")
    if _present_tables() is None:
        return ("this kernel has no legacy iptables (the ip_tables module is missing or "
                f"CONFIG_IP_NF_IPTABLES_LEGACY is off), and python-iptables writes only legacy tables; {USE_NFT}")
    missing = [t for t in TABLES if not _table_loadable(t)]
    if missing:
        mods = ", ".join(f"iptable_{t}" for t in missing)
        return (f"legacy iptables cannot load the {', '.join(missing)} table(s) here (kernel module(s) {mods} "
                f"missing), which kvmnet's chains need; {USE_NFT}")
    return None


def _nft_conflict() -> str | None:
    exe = shutil.which("iptables")
    if not exe:
        return None
    version = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
    if "nf_tables" not in version:
        return None
    save = shutil.which("iptables-nft-save") or shutil.which("iptables-save")
    if not save:
        return None
    found = _nft_rules(subprocess.run([save], capture_output=True, text=True).stdout)
    if not found:
        return None
    return (f"the iptables backend cannot be used here: this host's `iptables` is iptables-nft ({version.strip()}) "
            f"and this network namespace already has iptables-nft rules ({len(found)}, e.g. `{found[0]}`). "
            "kvmnet's iptables backend writes legacy xtables (python-iptables has no nf_tables support): its chains "
            "would not appear in `iptables -S` or `iptables-save` (only in `iptables-legacy-save`) and would run "
            "as a second rule set beside iptables-nft's, each tool blind to the other's rules. "
            f"The nftables backend coexists with iptables-nft: {USE_NFT}")


def _nft_rules(text: str) -> list[str]:
    """Rules, user chains and non-ACCEPT policies in `iptables-nft-save` output."""
    found = []
    for line in text.splitlines():
        if line.startswith("-A "):
            found.append(line)
        elif line.startswith(":"):
            words = line[1:].split()
            if len(words) >= 2 and words[1] not in ("ACCEPT", "-"):
                found.append(f"-P {words[0]} {words[1]}")
            elif len(words) >= 2 and words[1] == "-":
                found.append(f"-N {words[0]}")
    return found


def _present_tables() -> list[str] | None:
    """Legacy tables this namespace has; None when the kernel has no legacy iptables at all."""
    for attempt in (1, 2):
        try:
            with open("/proc/net/ip_tables_names") as f:
                return f.read().split()
        except FileNotFoundError:
            if attempt == 1 and os.path.exists("/proc/modules") and shutil.which("modprobe"):
                subprocess.run(["modprobe", "-q", "ip_tables"], capture_output=True)  # as iptables does
                continue
            return None
    return None


def _table_loadable(table: str) -> bool:
    """True unless the kernel demonstrably lacks the table (then iptc_init would fail)."""
    if table in (_present_tables() or []) or os.path.exists(f"/sys/module/iptable_{table}"):
        return True
    if os.path.exists("/proc/modules"):
        base = f"/lib/modules/{platform.release()}"
        for name in ("modules.builtin", "modules.dep"):
            try:
                with open(os.path.join(base, name)) as f:
                    if f"/iptable_{table}.ko" in f.read():
                        return True
            except OSError:
                return True  # cannot tell: let apply try
        return False
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f"{_CONFIG[table]}=y" in f.read()
    except OSError:
        return True


# ---------------------------------------------------------------- reading

def _read_save(tables: list[str]) -> dict:
    """{table: {"chains": {chain: [argv]}, "builtins": {chain: [argv]}}} from iptables-legacy-save."""
    from ..render.iptables import parse_save_line
    res = subprocess.run(["iptables-legacy-save"], capture_output=True, text=True)
    if res.returncode != 0:
        raise HostError(f"iptables-legacy-save failed: {res.stderr.strip()}")
    snap: dict = {}
    table = None
    for line in res.stdout.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            snap[table] = {"chains": {}, "builtins": {}}
        elif table is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            (snap[table]["chains"] if policy == "-" else snap[table]["builtins"])[name] = []
        elif line.startswith("-A "):
            chain, argv = parse_save_line(line)
            body = snap[table]
            (body["builtins"] if chain in body["builtins"] else body["chains"]).setdefault(chain, []).append(argv)
    return {t: snap.get(t, {"chains": {}, "builtins": {}}) for t in tables}


def _judge(prefix: str, snap: dict) -> dict:
    """observe()'s verdict from a snapshot (see the module docstring)."""
    owned = chain_names(prefix)
    chains, jumps = {}, {}
    for table, body in snap.items():
        for name, rules in body["chains"].items():
            if name in owned and owned[name][1] == table:
                chains[name] = rules
        for builtin, rules in body["builtins"].items():
            for argv in rules:
                if len(argv) >= 2 and argv[-2] in ("-j", "-g") and argv[-1] in owned:
                    jumps.setdefault(argv[-1], []).append((table, builtin, argv))
    exists = bool(chains or jumps)
    if not exists:
        return {"exists": False, "digest": None, "intact": False, "saved": None, "rules": {}}
    digests, totals, intact = set(), set(), bool(chains)
    for name, rules in chains.items():
        _, table, builtin = owned[name]
        marks = [parse_comment(rule_comment(r)) for r in rules]
        if not rules or None in marks:
            intact = False
        for mark in filter(None, marks):
            digests.add(mark[0])
            totals.add(mark[2])
            intact = intact and mark[1] == len(rules)
        if [(t, b, a) for t, b, a in jumps.get(name, [])] != [(table, builtin, jump_rule(name))]:
            intact = False
    if set(jumps) - set(chains):
        intact = False
    digest = next(iter(digests)) if len(digests) == 1 else None
    if digest is None or len(totals) != 1 or sum(len(r) for r in chains.values()) != next(iter(totals)):
        intact = False
    saved = None
    if chains:
        saved_tables: dict = {}
        for table in TABLES:
            mine = {c: r for c, r in chains.items() if owned[c][1] == table}
            if mine:
                saved_tables[table] = {"chains": mine, "jumps": {}}
                for c in mine:
                    for t, builtin, argv in jumps.get(c, [])[:1]:
                        if (t, builtin) == owned[c][1:]:
                            saved_tables[table]["jumps"][builtin] = argv
        saved = {"format": "kvmnet-iptables/1", "name": prefix, "digest": digest, "tables": saved_tables}
    return {"exists": True, "digest": digest, "intact": intact, "saved": saved,
            "rules": {c: len(r) for c, r in chains.items()}}


def observe(prefix: str) -> dict:
    """{"exists", "digest", "intact", "saved" (IptRuleset.to_json shape, for rollback), "rules"}."""
    tables = [t for t in TABLES if t in (_present_tables() or [])]
    if not tables:
        return {"exists": False, "digest": None, "intact": False, "saved": None, "rules": {}}
    if shutil.which("iptables-legacy-save"):
        snap = _read_save(tables)
    else:
        snap = _read_iptc(tables, prefix)
    return _judge(prefix, snap)


# ---------------------------------------------------------------- python-iptables glue

class _Lib:
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
    from ..render.iptables import split_save
    saved = getattr(ext, "_get_saved_buf", None)
    if saved is not None:
        buf = saved(rule.get_ip())
        return split_save(buf.decode() if isinstance(buf, bytes) else (buf or ""))
    out = []  # older python-iptables: parsed parameters (same text unless an option repeats)
    for key, values in ext.get_all_parameters().items():
        out += (["!", f"--{key}", *values[1:]] if values[:1] == ["!"] else [f"--{key}", *values])
    return out


def _decode(table, entry) -> list[str]:
    """One libiptc entry as the argv iptables-save would print for it."""
    iptc, _, ModuleTarget, _ = _Lib.get()
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


class _Encoder:
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
        iptc = _Lib.get()[0]
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
        iptc, _, ModuleTarget, ChainTarget = _Lib.get()
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


def _entries(table, chain: str) -> list:
    out = []
    entry = table.first_rule(chain)
    while entry:
        out.append(entry)
        entry = table.next_rule(entry)
    return out


def _jumps(table, owned: set[str]) -> list[tuple[str, int, str, object]]:
    """(built-in chain, position, target chain, entry) of every jump to one of `owned`."""
    out = []
    for chain in table.chains:
        if not table.builtin_chain(chain.name):
            continue
        for pos, entry in enumerate(_entries(table, chain.name)):
            label = table.get_target(entry)
            label = label.decode() if isinstance(label, bytes) else (label or "")
            if label in owned:
                out.append((chain.name, pos, label, entry))
    return out


def _read_iptc(tables: list[str], prefix: str) -> dict:
    """The same snapshot as _read_save, through libiptc (kvmnet's chains and its jumps only)."""
    owned = chain_names(prefix)
    snap = {}
    for name in tables:
        with _table(name) as table:
            mine = {c for c, (_, t, _) in owned.items() if t == name}
            chains = {c: [_decode(table, e) for e in _entries(table, c)] for c in sorted(mine) if table.is_chain(c)}
            builtins: dict = {}
            for builtin, _, _, entry in _jumps(table, mine):
                builtins.setdefault(builtin, []).append(_decode(table, entry))
            snap[name] = {"chains": chains, "builtins": builtins}
    return snap


@contextlib.contextmanager
def _table(name: str):
    """A fresh libiptc snapshot of `name` with autocommit off; pending changes are discarded and
    autocommit restored on the way out (commit explicitly)."""
    iptc = _Lib.get()[0]
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
def _xtables_lock(wait: float = LOCK_WAIT):
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


# ---------------------------------------------------------------- writing

def _sync_table(name: str, prefix: str, want: dict) -> bool:
    """Make table `name` hold exactly `want` ({"chains", "jumps"}) of kvmnet's; True if written."""
    _, delete_num, _, _ = _Lib.get()
    owned = {c for c, (_, t, _) in chain_names(prefix).items() if t == name}
    wanted_chains, wanted_jumps = want.get("chains", {}), want.get("jumps", {})
    with _table(name) as table:
        encoder = _Encoder(table)
        have = {c: len(_entries(table, c)) for c in sorted(owned) if table.is_chain(c)}
        listing: dict = {}

        def current(chain: str) -> list:
            # iptables-legacy-save is ~20x faster than decoding through python-iptables; under the
            # xtables lock it shows this same snapshot (the rule counts must agree, else decode)
            if not listing and shutil.which("iptables-legacy-save"):
                listing.update(_read_save([name])[name]["chains"])
            rules = listing.get(chain)
            if rules is not None and len(rules) == have[chain]:
                return rules
            return [_decode(table, e) for e in _entries(table, chain)]

        changed = False
        for chain, rules in wanted_chains.items():
            if chain not in owned:
                raise HostError(f"refusing to write chain {chain}: not one of kvmnet's chains for {prefix}")
            if have.get(chain) == len(rules) and current(chain) == rules:
                continue
            if chain in have:
                table.flush_entries(chain)
            else:
                table.create_chain(chain)
            for argv in rules:
                table.append_entry(chain, encoder.blob(argv))
            changed = True
        keep, drop = set(), []
        for builtin, pos, target, entry in _jumps(table, owned):
            wanted = wanted_jumps.get(builtin)
            if (wanted and builtin not in keep and target == wanted[-1] and target in wanted_chains
                    and _decode(table, entry) == wanted):
                keep.add(builtin)
            else:
                drop.append((builtin, pos))
        for builtin, pos in sorted(drop, key=lambda d: -d[1]):  # bottom up: positions stay valid
            if delete_num(builtin.encode(), ctypes.c_uint(pos), table._handle) != 1:
                raise HostError(f"cannot remove a jump from {name} {builtin}: {table.strerror()}")
            changed = True
        for builtin, argv in wanted_jumps.items():
            if builtin not in keep:
                table.insert_entry(builtin, encoder.blob(argv), 0)
                changed = True
        for chain in have:
            if chain not in wanted_chains:
                table.flush_entries(chain)
                _delete_chain(table, name, chain)
                changed = True
        if changed:
            try:
                table.commit()
            except Exception as exc:
                raise HostError(f"the kernel refused kvmnet's {name} table update: {exc}") from exc
        return changed


def _delete_chain(table, name: str, chain: str) -> None:
    iptc = _Lib.get()[0]
    try:
        table.delete_chain(chain)
    except iptc.IPTCError as exc:
        raise HostError(f"cannot delete chain {chain} from the {name} table ({exc}): a rule kvmnet did not create "
                        f"still jumps to it (see `iptables-legacy-save -t {name}`); remove that rule and retry") from exc


def apply_ruleset(prefix: str, data: dict) -> list[str]:
    """Load a ruleset (IptRuleset.to_json or observe()["saved"]); returns the tables written."""
    want = IptRuleset.from_json(data)
    if want.name != prefix:
        raise HostError(f"ruleset for {want.name} given for {prefix}")
    tables = want.tables()
    present = _present_tables() or []
    written = []
    _Lib.get()  # the slow import, before taking the lock others wait on
    with _xtables_lock():
        for name in TABLES:
            if name in tables or name in present:
                if _sync_table(name, prefix, tables.get(name, {})):
                    written.append(name)
    return written


def delete(prefix: str) -> list[str]:
    """Remove kvmnet's jumps and chains for `prefix`; nothing there is success (no iptc import)."""
    present = [t for t in TABLES if t in (_present_tables() or [])]
    if not present or not observe(prefix)["exists"]:
        return []
    written = []
    _Lib.get()
    with _xtables_lock():
        for name in reversed(TABLES):  # nat first: stop DNAT before the filter rules go
            if name in present and _sync_table(name, prefix, {}):
                written.append(name)
    return written


def run(step) -> None:
    a = step.args
    if step.op == "firewall.apply":
        apply_ruleset(a["table"], a["ruleset"])
    elif step.op == "firewall.delete":
        delete(a["table"])
    else:
        raise ValueError(f"unknown firewall step {step.op}")
