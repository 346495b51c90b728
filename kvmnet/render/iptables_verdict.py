"""Judging kvmnet's iptables chains as read from the host. Pure.

The chains carry their own comments, "kvmnet <digest> <n>/<total>" (render/iptables.py): they
are intact when every rule of every kvmnet chain carries the same digest and total, each chain
holds exactly its <n> rules, the chains add up to <total>, and each has exactly one jump from
its built-in chain. The verdict also carries the chains as they are (`saved`, in
IptRuleset.to_json's shape), which is what a rollback of a changed ruleset loads back.
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
                            saved_tables[table]["jumps"][c] = argv
        saved = {"format": "kvmnet-iptables/2", "name": prefix, "digest": digest, "tables": saved_tables}
    return {"exists": True, "digest": digest, "intact": intact, "saved": saved,
            "rules": {c: len(r) for c, r in chains.items()}}
