"""Links, addresses and routes: the one netlink interface of kvmnet (reads for observe, changes
for the executor). Changes go through pyroute2 (kvmnet.host.netlink_pyroute2, imported at the
first change); reads, a tap's life (creation, attach, deletion) and any link's deletion through
kvmnet.host.rtnl, a small stdlib client, because pyroute2's per-request and decoding costs
dominated at scale (see rtnl), and a guest added or removed then needs no pyroute2 at all.
Either way a failure is a NetlinkError (an OSError with .errno and .op).

Idempotent primitives: "already there" is success for an add, "already gone" for a delete.
"""

from __future__ import annotations

import errno
import socket
import time

from ..config.values import maker
from ..observed import Address, Link, Route
from . import netlink_pyroute2, prefetch, rtnl
from .netlink_error import NetlinkError

__all__ = ["NetlinkError", "index_of", "read_links", "read_links_named", "read_addrs", "read_routes", "add_bridge",
           "add_tap", "set_link", "regroup", "delete_link", "delete_group", "add_addr", "del_addr", "add_route", "del_route"]

_IFF_UP = 0x1
_MAIN_TABLE = 254
_PROTO_NAMES = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp", 186: "bgp",
                188: "ospf"}
_PROTO_NUMBERS = {v: k for k, v in _PROTO_NAMES.items()}

index_of = rtnl.index_of


def _index(name: str, op: str) -> int:
    idx = rtnl.index_of(name)
    if idx is None:
        raise NetlinkError(errno.ENODEV, f"{op}: no link {name}")
    return idx


def _change(op: str, harmless: tuple[int, ...], what: str, command: str, **fields) -> None:
    """One change through pyroute2; an error in `harmless` means it was already done."""
    try:
        netlink_pyroute2.request(op, what, command, **fields)
    except NetlinkError as exc:
        if exc.errno not in harmless:
            raise


# -- reads -----------------------------------------------------------------------------------

def read_links() -> dict[str, Link]:
    raw = prefetch.take_links()  # (read by a child while the file was: host/prefetch.py)
    if raw is None:
        raw = rtnl.dump_links()
    names = {l["index"]: l["name"] for l in raw}
    return {l["name"]: _link(l, names.get(l["master"])) for l in raw}


def read_links_named(names) -> dict[str, Link]:
    """Those of the named links that exist, one request each (a verify after a small change
    reads back the few links its steps touched, not a 1000-tap dump)."""
    out = {}
    for name in names:
        l = rtnl.get_link(name)
        if l is not None:
            out[name] = _link(l, _name_of(l["master"]))
    return out


def _link(l: dict, master: str | None) -> Link:
    return _new_link((l["name"], l["index"], l["kind"], l["mtu"], bool(l["flags"] & _IFF_UP), master, l["mac"],
                      l["stp"], l["forward_delay"], l["group"], l.get("multi_queue")))


# Link(*values) in half the time of its __init__ (a 1000-tap host: ~2 ms of every observation)
_new_link = maker(Link, ("name", "index", "kind", "mtu", "up", "master", "mac", "stp", "forward_delay", "group",
                         "multi_queue"))


def _name_of(index: int | None) -> str | None:
    if not index:
        return None
    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


# the address flags a user sets (nodad, optimistic, home, mngtmpaddr, noprefixroute, autojoin)
_USER_ADDR_FLAGS = 0x2 | 0x4 | 0x10 | 0x100 | 0x200 | 0x400
_IFA_F_TEMPORARY = 0x1  # IPv6: a privacy address the kernel made (IPv4: "secondary", the kernel's)


def _address(a: dict, link: str, read_at: float) -> Address:
    return Address(cidr=f"{a['address']}/{a['prefixlen']}", label=a["label"] if a["label"] != link else None,
                   broadcast=a["broadcast"], peer=a["peer"], scope=a["scope"], flags=a["flags"] & _USER_ADDR_FLAGS,
                   metric=a["metric"], valid_lft=a["valid"], preferred_lft=a["preferred"],
                   read_at=read_at if a["valid"] is not None else 0.0)


def read_addrs(links: dict[str, Link]) -> dict[str, tuple[Address, ...]]:
    """Each link's addresses in the kernel's order (which decides the primary IPv4 address)."""
    names = {link.index: link.name for link in links.values()}
    read_at = time.monotonic()
    out: dict[str, list[Address]] = {}
    for a in rtnl.dump_addrs():
        if a["family"] == 6 and (a["scope"] != 0 or a["flags"] & _IFA_F_TEMPORARY):
            continue  # link-local, host-scope and privacy IPv6 are the kernel's, not configuration
        name = names.get(a["index"], str(a["index"]))
        out.setdefault(name, []).append(_address(a, name, read_at))
    return {k: tuple(v) for k, v in out.items()}


def read_routes(links: dict[str, Link]) -> tuple[Route, ...]:
    """Unicast routes of every table."""
    names = {link.index: link.name for link in links.values()}
    out = []
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        for r in rtnl.dump_routes(family):
            if r["type"] != 1:  # unicast only: local, broadcast and multicast routes are the kernel's
                continue
            dst = f"{r['dst']}/{r['dst_len']}" if r["dst"] else "default"
            out.append(Route(family=version, dst=dst, dev=names.get(r["oif"], ""), gateway=r["gateway"],
                             metric=r["metric"], proto=_PROTO_NAMES.get(r["proto"], str(r["proto"])),
                             scope=r["scope"], prefsrc=r["prefsrc"], table=r["table"]))
    return tuple(out)


# -- links -----------------------------------------------------------------------------------

def add_bridge(name: str, mac: str | None, mtu: int | None, stp: bool, forward_delay: int,
               group: int | None = None) -> None:
    op = f"add bridge {name}"
    attrs = {"br_stp_state": int(stp), "br_forward_delay": forward_delay * 100}
    if mac:
        attrs["address"] = mac
    _change(op, (errno.EEXIST,), "link", "add", ifname=name, kind="bridge", **attrs)
    index = _index(name, op)
    if mtu:
        _set_bridge_mtu(op, index, name, mtu)
    netlink_pyroute2.request(op, "link", "set", index=index, state="up", **({"group": group} if group else {}))


def _set_bridge_mtu(op: str, index: int, name: str, mtu: int) -> None:
    """An MTU given at creation is not "set by the user": the kernel moves it to the smallest
    port's as soon as a port joins. A change after creation is; the kernel skips a change to the
    MTU the link already has, so step through a neighbouring value then."""
    if rtnl.read_mtu(name) == mtu:
        netlink_pyroute2.request(op, "link", "set", index=index, mtu=mtu - 1 if mtu > 68 else mtu + 1)
    netlink_pyroute2.request(op, "link", "set", index=index, mtu=mtu)


def add_tap(name: str, master: str, mac: str | None, mtu: int | None, group: int | None = None,
            multi_queue: bool = False) -> None:
    rtnl.create_tap(name, multi_queue)
    bridge = _index(master, f"add tap {name}")
    # group 0 is set too: a rollback puts a tap back in the default group it came from
    rtnl.set_link(name, master=bridge, mac=mac, mtu=mtu, group=group, up=True)  # one request


def delete_group(group: int, names: list[str]) -> list[str]:
    """Delete the links `names` in one request when group `group` holds exactly those (never
    anyone else's); returns the names still to delete one by one."""
    members = {l["name"] for l in rtnl.dump_links() if l["group"] == group}
    if not members or not members <= set(names):
        return list(names)
    rtnl.delete_group(group)
    return [n for n in names if n not in members and rtnl.index_of(n) is not None]


def regroup(names: list[str], group: int) -> None:
    """Move the links `names` that exist into link group `group` (one request each; a link that
    is gone meanwhile is skipped), so that delete_group can take them in one request."""
    for name in names:
        try:
            rtnl.set_link(name, group=group)
        except NetlinkError as exc:
            if exc.errno != errno.ENODEV:
                raise


delete_link = rtnl.delete_link


def set_link(name: str, *, master: str | None = None, mac: str | None = None, mtu: int | None = None,
             up: bool | None = None, stp: bool | None = None, forward_delay: int | None = None) -> None:
    """Only the given attributes change; master="" detaches the link from its bridge."""
    op = f"set link {name}"
    idx = _index(name, op)
    if master is not None:
        netlink_pyroute2.request(op, "link", "set", index=idx, master=_index(master, op) if master else 0)
    if mac:
        netlink_pyroute2.request(op, "link", "set", index=idx, address=mac)
    if mtu:
        netlink_pyroute2.request(op, "link", "set", index=idx, mtu=mtu)
    if stp is not None or forward_delay is not None:
        attrs = {}
        if forward_delay is not None:
            attrs["br_forward_delay"] = forward_delay * 100
        if stp is not None:
            attrs["br_stp_state"] = int(stp)
        netlink_pyroute2.request(op, "link", "set", index=idx, kind="bridge", **attrs)
    if up is not None:
        netlink_pyroute2.request(op, "link", "set", index=idx, state="up" if up else "down")


# -- addresses and routes --------------------------------------------------------------------

def _addr_fields(link: str, cidr: str, op: str) -> dict:
    addr, prefix = cidr.split("/")
    return {"index": _index(link, op), "address": addr, "prefixlen": int(prefix)}


def _lifetimes(attrs: dict) -> dict:
    """What is left of a lifetime read at attrs["read_at"] (time.monotonic()): a moved address
    keeps counting down rather than starting afresh. One expired meanwhile gets a last second."""
    if attrs.get("valid_lft") is None:
        return {}
    spent = max(int(time.monotonic() - attrs.get("read_at", time.monotonic())), 0)
    valid = max(attrs["valid_lft"] - spent, 1)
    preferred = attrs.get("preferred_lft")
    preferred = valid if preferred is None else min(max(preferred - spent, 0), valid)
    return {"valid_lft": valid, "preferred_lft": preferred}


def add_addr(link: str, cidr: str, label: str | None = None, broadcast: str | None = None,
             peer: str | None = None, scope: int = 0, flags: int = 0, metric: int | None = None, **lifetimes) -> None:
    """Add an address with what `ip addr add` can give it; lifetimes: valid_lft, preferred_lft
    (seconds left at read_at)."""
    op = f"add address {cidr} to {link}"
    fields = _addr_fields(link, cidr, op)
    optional = {"label": label, "broadcast": broadcast, "scope": scope or None, "flags": flags or None,
                "IFA_RT_PRIORITY": metric}
    fields.update({k: v for k, v in optional.items() if v is not None})
    if peer:  # IFA_LOCAL is ours, IFA_ADDRESS the other end
        fields.update(local=fields["address"], address=peer)
    fields.update(_lifetimes(lifetimes))
    _change(op, (errno.EEXIST,), "addr", "add", **fields)


def del_addr(link: str, cidr: str, **_attrs) -> None:
    """Delete an address (its other attributes, kept for the step that puts it back, are not needed)."""
    if rtnl.index_of(link) is None:
        return  # the link is gone, and its addresses with it
    op = f"delete address {cidr} from {link}"
    _change(op, (errno.EADDRNOTAVAIL, errno.ENOENT), "addr", "del", **_addr_fields(link, cidr, op))


def _route_fields(route: dict, op: str) -> dict:
    default = "0.0.0.0/0" if route["family"] == 4 else "::/0"
    fields = {"dst": default if route["dst"] == "default" else route["dst"],
              "family": socket.AF_INET if route["family"] == 4 else socket.AF_INET6,
              "table": route.get("table", _MAIN_TABLE), "oif": _index(route["dev"], op)}
    if route.get("gateway"):
        fields["gateway"] = route["gateway"]
    if route.get("metric") is not None:
        fields["priority"] = route["metric"]
    if route.get("prefsrc"):
        fields["prefsrc"] = route["prefsrc"]
    proto = route.get("proto") or "static"
    fields["proto"] = int(proto) if proto.isdigit() else _PROTO_NUMBERS.get(proto, 4)
    fields["scope"] = route.get("scope", 0)
    return fields


def _route_op(verb: str, route: dict) -> str:
    via = f" via {route['gateway']}" if route.get("gateway") else ""
    table = f" table {route['table']}" if route.get("table", _MAIN_TABLE) != _MAIN_TABLE else ""
    return f"{verb} route {route['dst']}{via} dev {route['dev']}{table}"


def add_route(route: dict) -> None:
    op = _route_op("add", route)
    _change(op, (errno.EEXIST,), "route", "add", **_route_fields(route, op))


def del_route(route: dict) -> None:
    if rtnl.index_of(route["dev"]) is None:
        return
    op = _route_op("delete", route)
    _change(op, (errno.ESRCH, errno.ENOENT), "route", "del", **_route_fields(route, op))
