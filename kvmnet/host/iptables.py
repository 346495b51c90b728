"""Writing kvmnet's chains for the iptables backend (legacy xtables, through python-iptables;
iptables_lib.py holds the libiptc glue, iptables_read.py the observer, iptables_probe.py the
checks that this host can use the backend at all).

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
A later foreign insert above the jump is not drift (its position among other tools' rules is
not checked), so kvmnet never fights another tool for the top slot; among kvmnet's own FORWARD
jumps the order is checked (render/iptables_verdict.py) and put back.

The ip6 chains (render/iptables6.py) are written the same way, through libip6tc, after the
IPv4 tables; ip6tables-legacy takes the same lock.

Only chains named exactly <prefix>-{GRD,ISO,FWD,FWO,INP,PRE,OUT,POST} and jump rules whose target is
one of them are ever touched; never a policy, never another rule. Tables are committed one by
one (legacy iptables has no cross-table transaction): a failure part-way raises, and apply's
rollback restores the saved previous chains (or deletes them).
"""

from __future__ import annotations

import shutil

from ..errors import HostError
from ..render.iptables import FAMILY_TABLES, IptRuleset, chain_names, forward_rank
from .iptables_lib import Encoder, Lib, decode, delete_num, entries, jumps, labels, table_handle, xtables_lock
from .iptables_probe import present_tables
from .iptables_read import SAVE, observe, read_save



def _sync_table(name: str, prefix: str, want: dict, family: int = 4) -> bool:
    """Make table `name` (of `family`) hold exactly `want` ({"chains", "jumps"}) of kvmnet's; True if written."""
    Lib.get()  # the slow import, once
    owned = {c for c, (_, t, _) in chain_names(prefix, family).items() if t == name}
    wanted_chains, wanted_jumps = want.get("chains", {}), want.get("jumps", {})
    with table_handle(name, family) as table:
        encoder = Encoder(table)
        have = {c: len(entries(table, c)) for c in sorted(owned) if table.is_chain(c)}
        listing: dict = {}

        def current(chain: str) -> list:
            # iptables-legacy-save is ~20x faster than decoding through python-iptables; under the
            # xtables lock it shows this same snapshot (the rule counts must agree, else decode)
            if not listing and shutil.which(SAVE[family]):
                listing.update(read_save([name], family)[name]["chains"])
            rules = listing.get(chain)
            if rules is not None and len(rules) == have[chain]:
                return rules
            return [decode(table, e) for e in entries(table, chain)]

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
        changed = _sync_jumps(table, name, (prefix, family), owned, wanted_chains, wanted_jumps, encoder) or changed
        for chain in have:
            if chain not in wanted_chains:
                table.flush_entries(chain)
                _delete_chain(table, name, chain)
                changed = True
        if changed:
            try:
                table.commit()
            except Exception as exc:
                raise HostError(f"the kernel refused kvmnet's {'ip6 ' if family == 6 else ''}{name} table update: {exc}") from exc
        return changed


def _sync_jumps(table, name: str, owner: tuple[str, int], owned: set[str], wanted_chains: dict, wanted_jumps: dict,
                encoder) -> bool:
    """Exactly one jump to each wanted chain from its built-in chain; others to kvmnet's chains go.
    In FORWARD, of every kvmnet topology: ISO jumps first, FWD jumps below them, FWO jumps below
    those (render/iptables.py FORWARD_RANK), so no network's inbound accept comes before an
    isolated network's refusal, and no outbound accept before any network's inbound reject."""
    builtin_of = {c: b for c, (_, _, b) in chain_names(*owner).items()}
    keep, drop = set(), []
    for builtin, pos, target, entry in jumps(table, owned):
        wanted = wanted_jumps.get(target)
        if (wanted and target not in keep and builtin == builtin_of[target] and target in wanted_chains
                and decode(table, entry) == wanted and not _misplaced(table, builtin, pos, target)):
            keep.add(target)
        else:
            drop.append((builtin, pos))
    for builtin, pos in sorted(drop, key=lambda d: -d[1]):  # bottom up: positions stay valid
        if not delete_num(table, builtin, pos):
            raise HostError(f"cannot remove a jump from {name} {builtin}: {table.strerror()}")
    inserted = False
    for chain in sorted(wanted_jumps, key=_rank):  # a lower rank first: the next goes below it
        if chain not in keep:
            builtin = builtin_of[chain]
            position = _below(table, _rank(chain)) if builtin == "FORWARD" else 0
            table.insert_entry(builtin, encoder.blob(wanted_jumps[chain]), position)
            inserted = True
    return bool(drop) or inserted


def _rank(chain: str) -> int:
    return forward_rank(chain) or 0


def _forward_ranks(table) -> list[tuple[int, int]]:
    """(position, rank) in FORWARD of every kvmnet topology's ISO, FWD and FWO jump (read, never touched)."""
    return [(pos, rank) for pos, label in enumerate(labels(table, "FORWARD"))
            for rank in [forward_rank(label)] if rank is not None]


def _below(table, rank: int) -> int:
    """The position just below the last kvmnet jump of a lower rank (0: none)."""
    lower = [pos for pos, r in _forward_ranks(table) if r < rank]
    return lower[-1] + 1 if lower else 0


def _misplaced(table, builtin: str, pos: int, target: str) -> bool:
    """A jump above a kvmnet jump of a lower rank (an FWO above an FWD, an FWD above an ISO)
    would let its accepts pass another network's refusals: it is put back in place."""
    rank = _rank(target)
    return builtin == "FORWARD" and any(p > pos and r < rank for p, r in _forward_ranks(table))


def _delete_chain(table, name: str, chain: str) -> None:
    iptc = Lib.get()[0]
    try:
        table.delete_chain(chain)
    except iptc.IPTCError as exc:
        raise HostError(f"cannot delete chain {chain} from the {name} table ({exc}): a rule kvmnet did not create "
                        f"still jumps to it (see `iptables-legacy-save -t {name}`); remove that rule and retry") from exc


def _label(name: str, family: int) -> str:
    return name if family == 4 else f"ip6 {name}"


def apply_ruleset(prefix: str, data: dict) -> list[str]:
    """Load a ruleset (IptRuleset.to_json or observe()["saved"]); returns the tables written
    ("nat", "ip6 filter"...). Tables present without wanted chains are synced to none: a
    ruleset that lost its IPv6 drops its ip6 chains."""
    want = IptRuleset.from_json(data)
    if want.name != prefix:
        raise HostError(f"ruleset for {want.name} given for {prefix}")
    written = []
    Lib.get()  # the slow import, before taking the lock others wait on
    with xtables_lock():
        for family, order in FAMILY_TABLES.items():  # IPv4 first, filter before nat
            tables, present = want.tables(family), present_tables(family) or []
            for name in order:
                if (name in tables or name in present) and _sync_table(name, prefix, tables.get(name, {}), family):
                    written.append(_label(name, family))
    return written


def delete(prefix: str) -> list[str]:
    """Remove kvmnet's jumps and chains for `prefix`; nothing there is success (no iptc import)."""
    present = {family: [t for t in order if t in (present_tables(family) or [])]
               for family, order in FAMILY_TABLES.items()}
    if not any(present.values()) or not observe(prefix)["exists"]:
        return []
    written = []
    Lib.get()
    with xtables_lock():
        for family, order in FAMILY_TABLES.items():
            for name in reversed(order):  # nat first: stop DNAT before the filter rules go
                if name in present[family] and _sync_table(name, prefix, {}, family):
                    written.append(_label(name, family))
    return written


def run(step) -> None:
    a = step.args
    if step.op == "firewall.apply":
        apply_ruleset(a["table"], a["ruleset"])
    elif step.op == "firewall.delete":
        delete(a["table"])
    else:
        raise ValueError(f"unknown firewall step {step.op}")
