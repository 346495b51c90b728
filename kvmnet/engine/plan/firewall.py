"""Facts about firewalls: kvmnet's own table (nftables, or chains on the iptables backend) and
its accepts in a host filter FORWARD chain whose policy is DROP. Pure.

Undoing a change to a table that already exists means loading the text it has now. The plan
does not read it (the listing costs a process, and a no-op apply must not pay it): the undo
carries LISTING, and the transaction reads the table once, through `with_listing`, before the
record is written.
"""

from __future__ import annotations

import shlex

from ... import naming
from ...model import ROUTING_MODES, Topology
from ...observed import Observed
from ...render import nft
from ...render.host_forward import host_forward_accepts
from ...render.memo import last_topology
from ..steps import Action, Step
from .facts import Facts
from .sysctls import BR_NF_CALL, BR_NF_CALL6

ELEMENTS = "firewall.elements"  # an element delta of an intact table's maps (its undo: the inverse)
LISTING = "listing"  # undo arg: the table whose current text the undo loads (filled before use)


def delete_step(backend: str, table: str) -> Step:
    """Remove kvmnet's table (nftables) or its chains and their jumps (iptables, `table` = prefix)."""
    if backend == "iptables":
        return Step("firewall.delete", {"backend": "iptables", "table": table, "summary": f"chains {table}-*",
                                        "command": f"(remove chains {table}-* and their jumps)"})
    return Step("firewall.delete", {"backend": backend, "table": table, "delete": nft.delete_text(table),
                                    "summary": f"table inet {table}", "command": f"nft delete table inet {table}"})


def _undo(step: Step, observed: Observed | None = None) -> Step:
    """Undo of firewall.apply: the rules there before (`previous`, or the table's listing when
    `previous` is LISTING), else no table at all."""
    a = step.args
    if a["backend"] == "iptables":
        if a.get("previous"):
            return Step("firewall.apply", dict(a, ruleset=a["previous"], previous=None, summary="the rules it had before"))
        return delete_step("iptables", a["table"])
    if a.get("previous") == LISTING:
        return Step("firewall.apply", dict(a, ruleset=None, previous=None, summary="the rules it had before",
                                           command="nft -f -  # the previous ruleset", **{LISTING: a["table"]}))
    return delete_step(a["backend"], a["table"])


def _redo(step: Step, observed: Observed | None = None) -> Step | None:
    """Undo of fwaccept.add/del: the opposite edit of the same rules."""
    op = {"fwaccept.add": "fwaccept.del", "fwaccept.del": "fwaccept.add"}[step.op]
    return Step(op, dict(step.args))


def _inverse(step: Step, observed: Observed | None = None) -> Step:
    """Undo of firewall.elements: the inverse delta (what it added deleted, what it deleted added)."""
    a = step.args
    return _delta(a["backend"], a["table"], delete=a["add"], add=a["delete"])


def delta_step(backend: str, table: str, held: dict, wanted: dict) -> Step:
    """The element delta from the maps `held` (the table's, intact) to `wanted`, in map order."""
    delete, add = {}, {}
    for name in nft.MAP_NAMES:
        old, new = held.get(name, []), wanted.get(name, [])
        old_set, new_set = set(old), set(new)
        if old_set != new_set:
            delete[name] = [e for e in old if e not in new_set]
            add[name] = [e for e in new if e not in old_set]
    return _delta(backend, table, delete, add)


_SHOWN = 20  # elements a delta's command spells out in full (a bigger one is summarised)


def _delta(backend: str, table: str, delete: dict, add: dict) -> Step:
    delete = {k: v for k, v in delete.items() if v}
    add = {k: v for k, v in add.items() if v}
    n_add, n_del = (sum(map(len, d.values())) for d in (add, delete))
    summary = f"table inet {table}: {n_add} forward(s) added, {n_del} removed"
    lines = nft.delta_lines(table, delete, add)
    command = ("nft " + shlex.quote("; ".join(lines)) if n_add + n_del <= _SHOWN
               else f"nft -f - <<'EOF' ... EOF  # {len(lines)} element command(s): {summary}")
    return Step(ELEMENTS, {"backend": backend, "table": table, "delete": delete, "add": add,
                           "summary": summary, "command": command})


UNDO = {"firewall.apply": _undo, "fwaccept.add": _redo, "fwaccept.del": _redo, "firewall.elements": _inverse}


def needs_listing(action: Action) -> str | None:
    """The table whose current text `action`'s undo still lacks, if any."""
    return action.undo.args.get(LISTING) if action.undo is not None else None


def with_listing(action: Action, text: str) -> Action:
    """`action` with its undo's ruleset filled in: delete both tables, then load `text`."""
    args = {k: v for k, v in action.undo.args.items() if k != LISTING}
    args["ruleset"] = args["delete"] + text
    return Action(action.key, action.kind, action.do, Step(action.undo.op, args))


def listing_to_keep(observed: Observed) -> dict:
    """The verify observation's view of kvmnet's nft table, with its generation stamp, for the
    record (Record.nft_seen); {} when it has no stamp (iptables, a fake host, no netlink)."""
    seen = observed.firewall
    return {k: v for k, v in seen.items() if k != "backend"} if seen.get("stamp") else {}


def key(topo: Topology, backend: str) -> str:
    """The fact kvmnet's table (or chains) is recorded under."""
    return f"firewall:{backend}:{naming.nft_table(topo.name)}"


# Content, not counts: on nftables, what is in kvmnet's table must be what kvmnet itself loaded.
# nft rewrites the text it is given (sets, reject forms, priorities, concatenations, differently
# from one nft release to the next), so predicting its listing from render/nft.py's text would
# be a second renderer to keep in step with nft. Instead the digest of the listing nft gives
# right after kvmnet's own load (the verify observation every apply already makes) is kept in
# the record under the table's fact, and every observation's digest is compared with it: exact on
# any nft version, at no cost to a no-op apply (the one JSON listing it makes anyway).
# The rules' comment digest leaves out the maps' elements (the forwards); the record keeps them
# as kvmnet last loaded them, beside the listing's digest. So when the table is intact (its
# digest is the recorded one) and only forwards differ, the change is an element delta of the
# maps in one nft transaction, and its undo the inverse delta: no listing of the old table to
# roll back to, no reload of 10,000 forwards to add one.

def _nft_drift(seen: dict, ruleset, recorded: str | None) -> str | None:
    """Why kvmnet's table is not `ruleset`'s rules (and maps) as kvmnet loaded them, or None when
    it is; its maps' elements are compared apart (_table_step)."""
    if not seen.get("exists"):
        return "no table"
    if (seen.get("rules") != ruleset.rules or set(seen.get("elements", ())) != set(ruleset.elements)
            or seen.get("comments") != [f"kvmnet {ruleset.digest}"]):
        return "its rules are not the topology's"
    if recorded is None or seen.get("content") != recorded:
        return "its content differs from what kvmnet loaded"
    return None


# nft.render, once per topology object and table (looked up at each call: the bench's phase
# driver wraps it in its module)
_render = last_topology(lambda topo, table: nft.render(topo, table))


def _table_step(topo: Topology, observed: Observed, backend: str, recorded: str | None = None,
                held: dict | None = None) -> Step | None:
    """The firewall.apply step, a firewall.elements step when only forwards differ from what the
    intact table holds (`held`: its maps' elements as the record has them), or None when
    kvmnet's rules on the host are already these."""
    if backend == "iptables":
        return _iptables_step(topo, observed)
    table = naming.nft_table(topo.name)
    ruleset = _render(topo, table)
    seen = observed.firewall
    why = _nft_drift(seen, ruleset, recorded)
    if why is None:
        if held is not None and seen.get("forwards") == _digests(held):
            return None if held == ruleset.maps else delta_step(backend, table, held, ruleset.maps)
        why = "its forwards are not what kvmnet loaded"
    summary = ruleset.summary if not seen.get("exists") else f"{ruleset.summary}; {why}"
    return Step("firewall.apply", {
        "backend": backend, "table": table, "ruleset": ruleset.text, "delete": nft.delete_text(table),
        "summary": summary, "previous": LISTING if seen.get("exists") else None,
        "command": f"nft -f - <<'EOF' ... EOF  # {ruleset.summary}"})


def _iptables_step(topo: Topology, observed: Observed) -> Step | None:
    """Same contract on the iptables backend: kvmnet's own chains, rebuilt per table in one commit.
    They must hold exactly the rendered rules (iptables_verdict.holds)."""
    from ...render import iptables as ipt
    from ...render.iptables_verdict import holds

    ruleset = ipt.render(topo)
    data = ruleset.to_json()
    if observed.firewall.get("digest") == ruleset.digest and holds(observed.firewall, data):
        return None
    return Step("firewall.apply", {
        "backend": "iptables", "table": ruleset.name, "ruleset": data, "summary": ruleset.summary,
        "previous": observed.firewall.get("saved"), "delete": None,
        "command": _restore_command(data, ruleset.summary)})


def _restore_command(data: dict, summary: str) -> str:
    """What the step does, as the commands a user would type (display only)."""
    tools = ["iptables"] + (["ip6tables"] if data.get("tables6") else [])
    return " && ".join(f"{t}-legacy-restore --noflush <<'EOF' ... EOF" for t in tools) + f"  # {summary}"


def table(facts: Facts, topo: Topology, backend: str, record=None) -> None:
    if nft.needs_table(topo):
        fact = key(topo, backend)
        recorded = record.content.get(fact) if record is not None else None
        held = record.elements.get(fact) if record is not None else None
        do = _table_step(topo, facts.obs, backend, recorded, held)
        facts.want(fact, do, UNDO[do.op](do) if do else None)


def _digests(maps: dict) -> dict:
    return {name: nft.elements_digest(elements) for name, elements in maps.items()}


def seen_after_delta(observed: Observed, ran: list[Action], topo: Topology, generation: str | None) -> dict | None:
    """What a listing of kvmnet's table would show now, when this apply's one nft commit was its
    element delta: the table was intact when observed (at the stamp's generation, or it would
    not have been a delta), nft committed the whole delta (or it would have failed), and the
    generation now (`generation`, nftgen.stamp) is exactly one past that stamp's, so no one else
    committed anything since. Then its maps are the topology's and the rest is as it was; and a
    verify listing (~130 ms for 10,000 forwards) would read back only what this proves. Else None."""
    seen, deltas = observed.firewall, [a for a in ran if a.do.op == ELEMENTS]
    if len(deltas) != 1 or not seen.get("exists") or not _one_commit_since(seen, generation):
        return None
    maps = _render(topo, deltas[0].do.args["table"]).maps
    return dict(seen, elements={k: len(v) for k, v in maps.items()}, forwards=_digests(maps),
                stamp=dict(seen["stamp"], at=generation))


def seen_after_load(observed: Observed, ran: list[Action], topo: Topology, generation: str | None) -> dict | None:
    """The same proof when this apply's one nft commit loaded kvmnet's table whole: its maps
    hold exactly the rendered elements. The rest of the table (chains and rules as nft rewrote
    them: its content digest) still needs a listing, but one without the maps' elements (`nft
    -t`; host/nftables.observe takes this "terse" result as what it may trust of them). Else None."""
    loads = [a for a in ran if a.do.op == "firewall.apply" and a.do.args.get("backend") != "iptables"]
    if len(loads) != 1 or any(a.do.op == ELEMENTS for a in ran) or not _one_commit_since(observed.firewall, generation):
        return None
    maps = _render(topo, loads[0].do.args["table"]).maps
    return {"terse": True, "elements": {k: len(v) for k, v in maps.items()}, "forwards": _digests(maps),
            "stamp": dict(observed.firewall["stamp"], at=generation)}


def _one_commit_since(seen: dict, generation: str | None) -> bool:
    """The generation now is exactly one past the observation's stamp (generations wrap at 2^32)."""
    stamp = seen.get("stamp")
    if not stamp or generation is None:
        return False
    boot_netns, _, gen = stamp["at"].rpartition(":")
    return gen.isdigit() and generation == f"{boot_netns}:{(int(gen) + 1) & 0xFFFFFFFF}"


def adopt_content(record, observed: Observed, ran: list[Action], topo: Topology) -> None:
    """After an apply's steps ran and the host was observed again (before the verifying plan):
    keep, under the table's fact, the digest of the nft table kvmnet just loaded (or changed the
    elements of), and the elements of its maps; forget both with the fact."""
    for action in ran:
        if action.do.op in ("firewall.apply", ELEMENTS) and action.do.args.get("backend") != "iptables":
            if observed.firewall.get("exists"):
                record.content[action.key] = observed.firewall.get("content")
                record.elements[action.key] = _render(topo, action.do.args["table"]).maps
    for facts in (record.content, record.elements):
        for fact in [f for f in facts if f not in record.keys()]:
            del facts[fact]


def accepts(facts: Facts, topo: Topology, backend: str) -> None:
    """Accepts for each network in a DROP-policy filter FORWARD (Docker's), when it has one, and
    in the ip6tables one for its IPv6 (Docker 27 drops there too)."""
    seen = facts.obs.host_forward
    for family, policy, rules, key in FAMILIES:
        if seen.get(policy) != "DROP":
            continue
        for net in topo.networks:
            specs = _forward_accepts(net, topo.name, backend, facts.obs.sysctls, family)
            if specs:
                held = all(save_line(spec) in seen.get(rules, []) for spec in specs)
                do = None if held else Step("fwaccept.add", fwaccept_args(net.bridge, topo.name, specs, family))
                facts.want(f"{key}:{net.bridge}", do, _redo(do) if do else None)


# per family: the host_forward keys of its FORWARD policy and of kvmnet's rules there, the fact key
FAMILIES = ((4, "policy", "rules", "fwaccept"), (6, "policy6", "rules6", "fwaccept6"))


def fwaccept_args(bridge: str, topology: str, specs: list[list[str]], family: int) -> dict:
    """A fwaccept step's arguments (`family` only for ip6tables: records before it had none)."""
    return {"bridge": bridge, "topology": topology, "specs": specs, **({"family": 6} if family == 6 else {})}


def may_need_ipv6_accepts(topo: Topology, backend: str, sysctls: dict) -> bool:
    """Whether any network needs an accept in the ip6tables FORWARD, should its policy be DROP."""
    return any(_forward_accepts(n, topo.name, backend, sysctls, 6) for n in topo.networks)


def _forward_accepts(net, topology: str, backend: str, sysctls: dict, family: int = 4) -> list[list[str]]:
    """Accept rules a network needs in a DROP-policy filter FORWARD (of iptables or ip6tables):
    nat/routed: in and out of the bridge (kvmnet's own table still rejects what it must), for
    IPv6 only with a subnet6; the iptables backend needs none, its FWD chain is jumped to from
    the top of FORWARD.
    bridged frames between ports, which pass FORWARD when br_netfilter's bridge-nf-call-iptables
    (-ip6tables) is 1: a bridge-mode network's (Docker's DROP would cut guests off the LAN), an
    isolated network's on the nftables backend (its guests off each other), and for IPv6 those of
    any network no kvmnet ip6 rule accepts (a nat network without subnet6: its guests' link-local
    IPv6, neighbour discovery included)."""
    accept = host_forward_accepts(net.bridge, topology)
    v6 = family == 6
    if net.mode in ROUTING_MODES and (not v6 or net.subnet6 is not None):
        return [accept["in"], accept["out"]] if backend != "iptables" else []
    bridged = (net.mode == "bridge" or net.mode == "isolated" and (backend != "iptables" or v6 and net.subnet6 is None)
               or net.mode in ROUTING_MODES)  # (routing here: IPv6 without subnet6)
    if bridged and sysctls.get(BR_NF_CALL6 if v6 else BR_NF_CALL) == "1":
        return [accept["between"]]
    return []


def save_line(spec: list[str]) -> str:
    """The rule as `iptables -S FORWARD` prints it."""
    words = [f'"{w}"' if " " in w else w for w in spec]
    return "-A FORWARD " + " ".join(words)
