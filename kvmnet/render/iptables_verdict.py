"""Judging kvmnet's iptables chains as read from the host. Pure.

The chains carry their own comments, "kvmnet <digest> <n>/<total>" (render/iptables.py): they
are intact when every rule of every kvmnet chain carries the same digest and total, each chain
holds exactly its <n> rules, the chains add up to <total>, and each has exactly one jump from
its built-in chain. The verdict also carries the chains as they are (`saved`, in
IptRuleset.to_json's shape), which is what a rollback of a changed ruleset loads back, and
whether any rule carries kvmnet's comment (`marked`: chains of kvmnet's names holding none are
someone else's). Counts are not enough to call them kvmnet's rules: `holds` compares `saved`
with the rendered ruleset, rule for rule.
"""

from __future__ import annotations

from .iptables import TABLES, chain_names, jump_rule, parse_comment, rule_comment

NOTHING = {"exists": False, "digest": None, "intact": False, "saved": None, "rules": {}}


def judge(prefix: str, snap: dict) -> dict:
    """The verdict on a snapshot {table: {"chains": {chain: [argv]}, "builtins": {chain: [argv]}}}."""
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
        return dict(NOTHING)
    digests, totals, intact, marked = set(), set(), bool(chains), False
    for name, rules in chains.items():
        _, table, builtin = owned[name]
        marks = [parse_comment(rule_comment(r)) for r in rules]
        if not rules or None in marks:
            intact = False
        for mark in filter(None, marks):
            marked = True
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
                            saved_tables[table]["jumps"][c] = argv
        saved = {"format": "kvmnet-iptables/2", "name": prefix, "digest": digest, "tables": saved_tables}
    return {"exists": True, "digest": digest, "intact": intact, "saved": saved,
            "rules": {c: len(r) for c, r in chains.items()}, "marked": marked}


def holds(verdict: dict, ruleset: dict) -> bool:
    """kvmnet's chains and jumps read back are exactly `ruleset` (IptRuleset.to_json): every rule,
    argument for argument. The renderer writes iptables-save's own argv form, so this is an exact
    compare, not a normalisation: a reject turned into an accept under kvmnet's comment, or a
    DNAT re-pointed at another guest, is drift even though every count still adds up."""
    saved = verdict.get("saved") or {}
    return bool(verdict.get("intact")) and saved.get("tables") == ruleset.get("tables")
