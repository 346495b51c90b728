"""The closed schema of a state record around its steps (engine/stepschema.py checks each step):
its fields, the hook index's networks and taps, uplink snapshots, content digests. A record that
fails it is corrupt and runs nothing."""

from __future__ import annotations

from ..ifname import problem as ifname_problem
from .stepschema import _ADDR, SchemaError, Where, _cidr, _route, check_step, elements as _map_elements


def _str_map(v, what: str, value_ok) -> None:
    if not isinstance(v, dict) or not all(isinstance(k, str) and value_ok(x) for k, x in v.items()):
        raise SchemaError(f"{what} must map names to {value_ok.__doc__}")


def _network_entry(x) -> bool:
    """{bridge, mode}"""
    return (isinstance(x, dict) and set(x) == {"bridge", "mode"} and isinstance(x["mode"], str)
            and isinstance(x["bridge"], str) and not ifname_problem(x["bridge"]))


def _network_name(x) -> bool:
    """network names"""
    return isinstance(x, str)


def _snapshot_addr(a):
    """A CIDR string (records before 0.2), or an address object as addr.add takes it."""
    if isinstance(a, str):
        return _cidr(a, None)
    if not isinstance(a, dict):
        return "not an address"
    unknown = set(a) - set(_ADDR) - {"family"}
    return (f"unknown address field(s) {sorted(unknown)}" if unknown else None) or next(
        (why for k, x in a.items() if k in _ADDR and (why := _ADDR[k][1](x, None))), None)


def _uplink(x) -> bool:
    """uplink snapshots ({mac, addrs, routes})"""
    if not isinstance(x, dict):
        return False
    addrs, routes = x.get("addrs", []), x.get("routes", [])
    return (isinstance(addrs, list) and not any(_snapshot_addr(a) for a in addrs)
            and isinstance(routes, list) and not any(_route(r, None) for r in routes))


RECORD_KEYS = {"version", "topology", "file", "entries", "uplinks", "firewall_backend", "networks", "taps",
               "content", "source", "source_sha256", "nft_seen", "elements"}
# content: fact key -> digest of the firewall listing kvmnet loaded; elements: fact key -> that
# table's maps' elements as kvmnet loaded them; source_sha256: the digest of the file's text as
# applied (kept apart, record.SOURCE_FILE); source: that text itself, as records before it kept it


def _check_elements(v) -> None:
    """fact -> kvmnet's DNAT maps and their elements (stepschema.elements): what an element delta
    of that table deletes (or, undone, adds back) is only ever a map element."""
    if not isinstance(v, dict):
        raise SchemaError("elements must map facts to kvmnet's maps")
    for fact, maps in v.items():
        why = _map_elements(maps)
        if why:
            raise SchemaError(f"elements of {fact}: {why}")


def _digest(x) -> bool:
    """hex digests"""
    return isinstance(x, str) and 0 < len(x) <= 128 and all(c in "0123456789abcdef" for c in x)


def check_record(data, where: Where, version: int) -> None:
    """Raise SchemaError unless `data` is a whole, well-formed record of `where.topology`."""
    if not isinstance(data, dict):
        raise SchemaError("not a JSON object")
    if data.get("version") != version:
        raise SchemaError(f"not a kvmnet state record of version {version}")
    extra = sorted(set(data) - RECORD_KEYS)
    if extra:
        raise SchemaError(f"unknown field(s) {', '.join(extra)}")
    if data.get("topology") != where.topology:
        raise SchemaError(f"topology is {data.get('topology')!r}, not {where.topology!r} (its directory)")
    if not isinstance(data.get("source", ""), str):
        raise SchemaError("source must be the topology file's text")
    digest = data.get("source_sha256", "")
    if digest != "" and not (_digest(digest) and len(digest) == 64):
        raise SchemaError("source_sha256 must be a sha256 hex digest")
    if not isinstance(data.get("file", ""), str) or data.get("firewall_backend") not in (None, "nftables", "iptables"):
        raise SchemaError("file must be a string and firewall_backend nftables, iptables or null")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise SchemaError("entries must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
            raise SchemaError(f"entries[{i}] must be [key, undo step or null]")
        if entry[1] is not None:
            try:
                check_step(entry[1], where)
            except SchemaError as exc:
                raise SchemaError(f"entries[{i}] ({entry[0]}): {exc}") from None
    _str_map(data.get("uplinks", {}), "uplinks", _uplink)
    _str_map(data.get("networks", {}), "networks", _network_entry)
    _str_map(data.get("taps", {}), "taps", _network_name)
    _str_map(data.get("content", {}), "content", _digest)
    _check_elements(data.get("elements", {}))
    if not _nft_seen(data.get("nft_seen", {})):
        raise SchemaError("nft_seen must be {} or what nftables.observe returned, with its stamp")


def _count(x) -> bool:
    """counts"""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _nft_seen(x) -> bool:
    """The last listing of kvmnet's table with its generation stamp (host/nftables.py observe),
    which observations return unchanged while the generation has not moved: every field typed."""
    if x == {}:
        return True
    if not isinstance(x, dict) or not isinstance(stamp := x.get("stamp"), dict):
        return False
    if set(stamp) != {"at", "table", "bridge_table"} or not isinstance(stamp["at"], str) \
            or not isinstance(stamp["table"], str) or not isinstance(stamp["bridge_table"], bool):
        return False
    if x.get("exists") is False:
        return set(x) == {"exists", "stamp"}
    try:
        _str_map(x["rules"], "rules", _count)
        _str_map(x["elements"], "elements", _count)
        _str_map(x.get("forwards", {}), "forwards", _digest)  # (records before element deltas: none)
    except (KeyError, SchemaError):
        return False
    return (set(x) - {"forwards"} == {"exists", "families", "rules", "elements", "comments", "marked", "content", "stamp"}
            and x["exists"] is True and isinstance(x["marked"], bool) and _digest(x["content"])
            and isinstance(x["families"], list) and set(x["families"]) <= {"inet", "bridge"}
            and isinstance(x["comments"], list) and all(isinstance(c, str) for c in x["comments"]))
