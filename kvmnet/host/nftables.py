"""The nftables backend: kvmnet's own tables (inet, and bridge for spoof protection), each
replaced in one `nft -f` transaction, observed through `nft -j list` (both run by nft_cmd:
libnftables in this process, or the `nft` CLI)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

from .. import gcpause
from ..errors import HostError
from ..render.nft import elements_digest
from . import nft_cmd, procs

MARK = re.compile(r"kvmnet [0-9a-f]{12}")  # every rule's comment in render/nft.py


def nft_available() -> bool:
    """`nft` is installed (whether the kernel takes its rules shows at the first load, which
    fails the apply cleanly; a probe here would cost a process on every run)."""
    return procs.which("nft") is not None


def load(text: str, linger: bool = False) -> None:
    rc, _, err = nft_cmd.ruleset(text, linger)
    if rc != 0:
        raise HostError(f"nft rejected the ruleset: {err.strip()}")


def _list(family: str, table: str, terse: bool = False) -> list | None:
    """The table's items from `nft -j [-t] list` (metainfo dropped; terse: maps without their
    elements), or None if it does not exist."""
    rc, out, _ = nft_cmd.command(["list", "table", family, table], json=True, terse=terse)
    if rc != 0:
        return None
    # volatile keys dropped while parsing: one call per object instead of a second walk of
    # every value (10,000 forwards list as ~90,000 of them)
    with gcpause.paused():  # ~90,000 acyclic objects
        return [i for i in json.loads(out, object_hook=_drop_volatile)["nftables"] if "metainfo" not in i]


# What changes in a listing without anyone changing the rules: the kernel's handles, and what
# traffic moves (counters, quota use, the expiry of dynamic set elements)
_VOLATILE = frozenset({"handle", "packets", "bytes", "used", "used_unit", "expires"})


def _drop_volatile(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in _VOLATILE} if not _VOLATILE.isdisjoint(obj) else obj


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def content_digest(items: list) -> str:
    """sha256 of a listing without its volatile parts: equal exactly when the rules are."""
    return hashlib.sha256(json.dumps(_stable(items), sort_keys=True).encode()).hexdigest()


def _digest(items: list) -> str:
    """content_digest of items already without their volatile parts (_list drops them)."""
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


def observe(table: str, bridge_table: bool = True, known: dict | None = None) -> dict:
    """{"exists", "families" (those present), "rules": {chain: n}, "elements": {map: n},
    "comments": sorted set, "marked" (some rule carries kvmnet's comment), "content" (digest)}.

    The bridge table is listed when the topology has one (spoof_protection), or when there is
    no inet table (a first apply: a foreign bridge table of kvmnet's name would be replaced);
    a no-op re-apply of a topology without one still costs one process.

    `known`: an earlier result (its "stamp"), returned as it was while nftables' generation
    (nftgen.py) has not moved since: no process at all. A "terse" one knows only the maps'
    elements (engine/plan/firewall.py seen_after_load): the rest is listed without them. Every
    result carries its stamp."""
    from . import nftgen
    stamp = {"at": nftgen.stamp(), "table": table, "bridge_table": bridge_table}
    if stamp["at"] is not None and known and known.get("stamp") == stamp:
        if not known.get("terse"):
            return dict(known)
        seen = _observe(table, bridge_table, terse=True)
        if seen.get("exists") and seen["elements"].keys() == known["elements"].keys():
            return dict(seen, elements=known["elements"], forwards=known["forwards"], stamp=stamp)
    seen = _observe(table, bridge_table)
    return dict(seen, stamp=stamp) if stamp["at"] is not None else seen


def _observe(table: str, bridge_table: bool, terse: bool = False) -> dict:
    inet = _list("inet", table, terse)
    bridge = _list("bridge", table, terse) if bridge_table or inet is None else None
    if inet is None and bridge is None:
        return {"exists": False}
    items = (inet or []) + (bridge or [])
    rules: dict[str, int] = {}
    elements: dict[str, int] = {}
    forwards: dict[str, str] = {}
    comments = set()
    for item in items:
        kind, body = next(iter(item.items()))
        prefix = "bridge:" if body.get("family") == "bridge" else ""
        if kind == "chain":
            rules.setdefault(prefix + body["name"], 0)
        elif kind == "rule":
            rules[prefix + body["chain"]] = rules.get(prefix + body["chain"], 0) + 1
            comments.add(body.get("comment", ""))
        elif kind == "map":
            elements[body["name"]] = len(body.get("elem", []))
            forwards[body["name"]] = elements_digest(map(element_text, body.get("elem", [])))
    # content: everything but the maps' elements, which `forwards` covers apart (the part an
    # element delta changes, and can compute: engine/plan/firewall.py seen_after_delta)
    items = [{"map": {k: v for k, v in i["map"].items() if k != "elem"}} if "map" in i else i for i in items]
    return {"exists": True, "families": [f for f, t in (("inet", inet), ("bridge", bridge)) if t is not None],
            "rules": {k: v for k, v in rules.items() if v}, "elements": elements, "forwards": forwards,
            "comments": sorted(comments), "marked": any(MARK.fullmatch(c) for c in comments),
            "content": _digest(items)}


def element_text(elem) -> str:
    """A map element of `nft -j` as render/nft.py writes it: `tcp . 8080 : 10.0.0.5 . 80`, with
    each address in Python's spelling (IPv6 as ipaddress prints it); any other shape (what
    kvmnet never writes) as its JSON, which then matches nothing kvmnet loaded."""
    if isinstance(elem, list) and len(elem) == 2:
        key, value = (_side(x) for x in elem)
        if key is not None and value is not None:
            return f"{key} : {value}"
    return json.dumps(elem, sort_keys=True)


def _side(part) -> str | None:
    atoms = part["concat"] if isinstance(part, dict) and list(part) == ["concat"] else [part]
    if not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in atoms):
        return None
    return " . ".join(_atom(a) for a in atoms)


def _atom(atom) -> str:
    if isinstance(atom, str) and ":" in atom:
        try:
            return str(ipaddress.IPv6Address(atom))
        except ValueError:
            return atom
    return str(atom)


def listing(table: str) -> str:
    """kvmnet's tables as loadable text: what a rollback of a changed ruleset restores. Read only
    when a change is planned, so a no-op apply costs one JSON listing."""
    text = ""
    for family in ("inet", "bridge"):
        rc, out, _ = nft_cmd.command(["list", "table", family, table])
        if rc == 0:
            text += out
    return text


def run(step) -> None:
    if step.op == "firewall.elements":  # one transaction: all of the delta, or none of it
        from ..render.nft import delta_text
        # (a delta is small: its context may wait until exit to be freed, nft_cmd._park)
        load(delta_text(step.args["table"], step.args["delete"], step.args["add"]), linger=True)
        return
    load(step.args["ruleset"] if step.op == "firewall.apply" else step.args["delete"])
