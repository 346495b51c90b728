"""Links, addresses and routes: changes through pyroute2 (one IPRoute socket per process,
imported only when something changes); reads and taps through kvmnet.host.rtnl, a small stdlib
rtnetlink client, because pyroute2's per-request and decoding costs dominated at scale (see rtnl).

Idempotent primitives: "already there" is success for an add, "already gone" for a delete.
"""

from __future__ import annotations

import errno
import socket

from ..observed import Link, Route
from . import rtnl

_IFF_UP = 0x1
_MAIN_TABLE = 254
_PROTO_NAMES = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 16: "dhcp", 186: "bgp", 188: "ospf"}
_PROTO_NUMBERS = {v: k for k, v in _PROTO_NAMES.items()}

_ipr = None


def _ip():
    global _ipr
    if _ipr is None:
        from pyroute2 import IPRoute  # imported here: ~150 ms, and only executors need it

        _ipr = IPRoute()
    return _ipr


def _errno(exc) -> int | None:
    return getattr(exc, "code", None)


def _index(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)  # an ioctl: no netlink dump per lookup
    except OSError:
        return None


def read_links() -> dict[str, Link]:
    raw = rtnl.dump_links()
    names = {l["index"]: l["name"] for l in raw}
    return {l["name"]: Link(name=l["name"], index=l["index"], kind=l["kind"], mtu=l["mtu"],
                            up=bool(l["flags"] & _IFF_UP), master=names.get(l["master"]), mac=l["mac"],
                            stp=l["stp"], forward_delay=l["forward_delay"], group=l["group"])
            for l in raw}


def read_addrs(links: dict[str, Link]) -> dict[str, frozenset[str]]:
    names = {link.index: link.name for link in links.values()}
    out: dict[str, set[str]] = {}
    for a in rtnl.dump_addrs():
        if a["family"] == 6 and a["scope"] != 0:
            continue  # link-local and host-scope IPv6 are the kernel's, not configuration
        out.setdefault(names.get(a["index"], str(a["index"])), set()).add(f"{a['address']}/{a['prefixlen']}")
    return {k: frozenset(v) for k, v in out.items()}


def read_routes(links: dict[str, Link]) -> tuple[Route, ...]:
    names = {link.index: link.name for link in links.values()}
    out = []
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        for r in rtnl.dump_routes(family):
            if r["table"] != _MAIN_TABLE or r["type"] != 1:  # unicast routes of the main table only
                continue
            dst = f"{r['dst']}/{r['dst_len']}" if r["dst"] else "default"
            out.append(Route(family=version, dst=dst, dev=names.get(r["oif"], ""), gateway=r["gateway"],
                             metric=r["metric"], proto=_PROTO_NAMES.get(r["proto"], str(r["proto"])),
                             scope=r["scope"], prefsrc=r["prefsrc"]))
    return tuple(out)


def _ignore(codes, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # pyroute2's NetlinkError carries .code
        if _errno(exc) in codes:
            return None
        raise


def add_bridge(name: str, mac: str | None, mtu: int | None, stp: bool, forward_delay: int) -> None:
    attrs = {"br_stp_state": int(stp), "br_forward_delay": forward_delay * 100}
    if mac:
        attrs["address"] = mac
    if mtu:
        attrs["mtu"] = mtu
    _ignore((errno.EEXIST,), _ip().link, "add", ifname=name, kind="bridge", **attrs)
    _ip().link("set", index=_index(name), state="up")


def add_tap(name: str, master: str, mac: str | None, mtu: int | None, group: int | None = None) -> None:
    rtnl.create_tap(name)
    bridge = _index(master)
    if bridge is None:
        raise OSError(errno.ENODEV, f"bridge {master} does not exist")
    rtnl.set_link(name, master=bridge, mac=mac, mtu=mtu, group=group or None, up=True)  # one request


def delete_group(group: int, names: list[str]) -> list[str]:
    """Delete the links `names` in one request when group `group` holds exactly those (never
    anyone else's); returns the names still to delete one by one."""
    members = {l["name"] for l in rtnl.dump_links() if l["group"] == group}
    if not members or not members <= set(names):
        return list(names)
    _ignore((errno.ENODEV,), _ip().link, "del", index=0, group=group)
    return [n for n in names if n not in members and _index(n) is not None]


def delete_link(name: str) -> None:
    idx = _index(name)
    if idx is not None:
        _ignore((errno.ENODEV,), _ip().link, "del", index=idx)


def set_link(name: str, *, master: str | None = None, mac: str | None = None, mtu: int | None = None,
             up: bool | None = None, stp: bool | None = None, forward_delay: int | None = None) -> None:
    """Only the given attributes change; master="" detaches the link from its bridge."""
    idx = _index(name)
    if idx is None:
        raise OSError(errno.ENODEV, f"link {name} does not exist")
    ipr = _ip()
    if master is not None:
        ipr.link("set", index=idx, master=_index(master) if master else 0)
    if mac:
        ipr.link("set", index=idx, address=mac)
    if mtu:
        ipr.link("set", index=idx, mtu=mtu)
    if stp is not None or forward_delay is not None:
        attrs = {}
        if forward_delay is not None:
            attrs["br_forward_delay"] = forward_delay * 100
        if stp is not None:
            attrs["br_stp_state"] = int(stp)
        ipr.link("set", index=idx, kind="bridge", **attrs)
    if up is not None:
        ipr.link("set", index=idx, state="up" if up else "down")


def _addr_args(link: str, cidr: str) -> dict:
    addr, prefix = cidr.split("/")
    idx = _index(link)
    if idx is None:
        raise OSError(errno.ENODEV, f"link {link} does not exist")
    return {"index": idx, "address": addr, "prefixlen": int(prefix)}


def add_addr(link: str, cidr: str) -> None:
    _ignore((errno.EEXIST,), _ip().addr, "add", **_addr_args(link, cidr))


def del_addr(link: str, cidr: str) -> None:
    if _index(link) is None:
        return  # the link is gone, and its addresses with it
    _ignore((errno.EADDRNOTAVAIL, errno.ENOENT), _ip().addr, "del", **_addr_args(link, cidr))


def _route_args(route: dict) -> dict:
    args = {"dst": "0.0.0.0/0" if route["family"] == 4 else "::/0"} if route["dst"] == "default" else {"dst": route["dst"]}
    args["family"] = socket.AF_INET if route["family"] == 4 else socket.AF_INET6
    args["table"] = _MAIN_TABLE
    idx = _index(route["dev"])
    if idx is None:
        raise OSError(errno.ENODEV, f"link {route['dev']} does not exist")
    args["oif"] = idx
    if route.get("gateway"):
        args["gateway"] = route["gateway"]
    if route.get("metric") is not None:
        args["priority"] = route["metric"]
    if route.get("prefsrc"):
        args["prefsrc"] = route["prefsrc"]
    args["proto"] = _PROTO_NUMBERS.get(route.get("proto") or "static", 4)
    args["scope"] = route.get("scope", 0)
    return args


def add_route(route: dict) -> None:
    _ignore((errno.EEXIST,), _ip().route, "add", **_route_args(route))


def del_route(route: dict) -> None:
    if _index(route["dev"]) is None:
        return
    _ignore((errno.ESRCH, errno.ENOENT), _ip().route, "del", **_route_args(route))
