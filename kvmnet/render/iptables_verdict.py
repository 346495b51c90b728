"""Judging kvmnet's iptables chains as read from the host. Pure.

The chains carry their own comments, "kvmnet <digest> <n>/<total>" (render/iptables.py): they
are intact when every rule of every kvmnet chain carries the same digest and total, each chain
holds exactly its <n> rules, the chains add up to <total>, and each has exactly one jump from
its built-in chain. The verdict also carries the chains as they are (`saved`, in
IptRuleset.to_json's shape), which is what a rollback of a changed ruleset loads back, and
whether any rule carries kvmnet's comment (`marked`: chains of kvmnet's names holding none are
someone else's). Counts are not enough to call them kvmnet's rules: `holds` compares `saved`
with the rendered ruleset, rule for rule. The ip6 chains (the same names, in the ip6tables
tables) belong to the same ruleset: their comments carry the same digest and count towards the
one total, so a rule lost from either family shows the same way.
"""

from __future__ import annotations

from .iptables import FAMILY_TABLES, JSON_KEY, chain_names, forward_rank, jump_rule, parse_comment, rule_comment

NOTHING = {"exists": False, "digest": None, "intact": False, "saved": None, "rules": {}}


def _mine(owned: dict, snap: dict) -> tuple[dict, dict]:
    """kvmnet's chains {name: rules} and jumps {chain: [(table, builtin, argv)]} in one family's snapshot."""
    chains, jumps = {}, {}
    for table, body in snap.items():
        for name, rules in body["chains"].items():
            if name in owned and owned[name][1] == table:
                chains[name] = rules
        for builtin, rules in body["builtins"].items():
            for argv in rules:
                if len(argv) >= 2 and argv[-2] in ("-j", "-g") and argv[-1] in owned:
                    jumps.setdefault(argv[-1], []).append((table, builtin, argv))
    return chains, jumps


def _misranked(owned: dict, snap: dict) -> bool:
    """Whether a FORWARD jump to one of `owned` sits above a kvmnet jump of a lower rank, of any
    topology (an FWO above an FWD, an FWD above an ISO): its accepts would pass that network's
    refusals. Another tool's insert above them changes no rank and is not drift."""
    forward = snap.get("filter", {}).get("builtins", {}).get("FORWARD", [])
    ranks = [(argv[-1], rank) for argv in forward if len(argv) >= 2 and argv[-2] in ("-j", "-g")
             for rank in [forward_rank(argv[-1])] if rank is not None]
    return any(target in owned and any(r < rank for _, r in ranks[i + 1:])
               for i, (target, rank) in enumerate(ranks))


def _tally(owned: dict, chains: dict, jumps: dict, seen: dict) -> bool:
    """Count one family's comments into `seen` (digests, totals, marked); False if a chain is
    not whole: a rule without kvmnet's comment, a count that is off, a jump missing or doubled."""
    intact = bool(chains)
    for name, rules in chains.items():
        _, table, builtin = owned[name]
        marks = [parse_comment(rule_comment(r)) for r in rules]
        if not rules or None in marks:
            intact = False
        for mark in filter(None, marks):
            seen["marked"] = True
            seen["digests"].add(mark[0])
            seen["totals"].add(mark[2])
            intact = intact and mark[1] == len(rules)
        if jumps.get(name, []) != [(table, builtin, jump_rule(name))]:
            intact = False
    return intact and not set(jumps) - set(chains)


def _saved(owned: dict, family: int, chains: dict, jumps: dict) -> dict:
    """One family's chains in IptRuleset.to_json's "tables" shape (with the jumps found in place)."""
    saved_tables: dict = {}
    for table in FAMILY_TABLES[family]:
        mine = {c: r for c, r in chains.items() if owned[c][1] == table}
        if mine:
            saved_tables[table] = {"chains": mine, "jumps": {}}
            for c in mine:
                for t, builtin, argv in jumps.get(c, [])[:1]:
                    if (t, builtin) == owned[c][1:]:
                        saved_tables[table]["jumps"][c] = argv
    return saved_tables


def judge(prefix: str, snap: dict, snap6: dict | None = None) -> dict:
    """The verdict on snapshots {table: {"chains": {chain: [argv]}, "builtins": {chain: [argv]}}}
    of the iptables and (if given) the ip6tables tables: one ruleset, one digest and total."""
    found, misranked = {}, False
    for family, family_snap in ((4, snap), (6, snap6 or {})):
        owned = chain_names(prefix, family)
        found[family] = (owned, *_mine(owned, family_snap))
        misranked = misranked or _misranked(owned, family_snap)
    if not any(chains or jumps for _, chains, jumps in found.values()):
        return dict(NOTHING)
    seen: dict = {"digests": set(), "totals": set(), "marked": False}
    whole = {family: _tally(owned, chains, jumps, seen) for family, (owned, chains, jumps) in found.items()}
    # an IPv4-only ruleset has no ip6 chains: intact needs the IPv4 ones and any ip6 ones whole
    intact = whole[4] and (whole[6] or not (found[6][1] or found[6][2]))
    digests, totals = seen["digests"], seen["totals"]
    digest = next(iter(digests)) if len(digests) == 1 else None
    count = sum(len(r) for _, chains, _ in found.values() for r in chains.values())
    if digest is None or len(totals) != 1 or count != next(iter(totals)) or misranked:
        intact = False
    saved = None
    if found[4][1] or found[6][1]:
        saved = {"format": "kvmnet-iptables/2", "name": prefix, "digest": digest}
        for family, (owned, chains, jumps) in found.items():
            if family == 4 or chains:
                saved[JSON_KEY[family]] = _saved(owned, family, chains, jumps)
    rules = {c: len(r) for c, r in found[4][1].items()}
    rules.update({f"ip6 {c}": len(r) for c, r in found[6][1].items()})
    return {"exists": True, "digest": digest, "intact": intact, "saved": saved, "rules": rules,
            "marked": seen["marked"]}


def holds(verdict: dict, ruleset: dict) -> bool:
    """kvmnet's chains and jumps read back are exactly `ruleset` (IptRuleset.to_json): every rule,
    argument for argument, in the iptables and the ip6tables tables. The renderer writes
    iptables-save's own argv form, so this is an exact compare, not a normalisation: a reject
    turned into an accept under kvmnet's comment, or a DNAT re-pointed at another guest, is
    drift even though every count still adds up."""
    saved = verdict.get("saved") or {}
    return (bool(verdict.get("intact")) and saved.get("tables") == ruleset.get("tables")
            and (saved.get("tables6") or {}) == (ruleset.get("tables6") or {}))
