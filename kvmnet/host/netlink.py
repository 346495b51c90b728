"""Links, addresses and routes through pyroute2: one IPRoute socket per process.

Idempotent primitives: "already there" is success for an add, "already gone" for a delete.
"""

from __future__ import annotations

import errno
import socket

from ..observed import Link, Route

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
    msgs = list(_ip().get_links())
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in msgs}
    links = {}
    for m in msgs:
        info = m.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else None
        stp = delay = None
        if kind == "bridge":
            data = info.get_attr("IFLA_INFO_DATA")
            stp = bool(data.get_attr("IFLA_BR_STP_STATE"))
            delay = data.get_attr("IFLA_BR_FORWARD_DELAY") // 100  # kernel keeps centiseconds
        name = names[m["index"]]
        links[name] = Link(name=name, index=m["index"], kind=kind or "", mtu=m.get_attr("IFLA_MTU"),
                           up=bool(m["flags"] & _IFF_UP), master=names.get(m.get_attr("IFLA_MASTER")),
                           mac=m.get_attr("IFLA_ADDRESS") or "", stp=stp, forward_delay=delay,
                           group=m.get_attr("IFLA_GROUP") or 0)
    return links


def read_addrs(links: dict[str, Link]) -> dict[str, frozenset[str]]:
    names = {link.index: link.name for link in links.values()}
    out: dict[str, set[str]] = {}
    for a in _ip().get_addr():
        if a["family"] == socket.AF_INET6 and a["scope"] != 0:
            continue  # link-local and host-scope IPv6 are the kernel's, not configuration
        addr = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
        out.setdefault(names.get(a["index"], str(a["index"])), set()).add(f"{addr}/{a['prefixlen']}")
    return {k: frozenset(v) for k, v in out.items()}


def read_routes(links: dict[str, Link]) -> tuple[Route, ...]:
    names = {link.index: link.name for link in links.values()}
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in _ip().get_routes(family=family, table=_MAIN_TABLE):
            if r.get_attr("RTA_TABLE", r["table"]) != _MAIN_TABLE or r["type"] != 1:  # unicast only
                continue
            dst = r.get_attr("RTA_DST")
            dst = f"{dst}/{r['dst_len']}" if dst else "default"
            out.append(Route(family=4 if family == socket.AF_INET else 6, dst=dst,
                             dev=names.get(r.get_attr("RTA_OIF"), ""), gateway=r.get_attr("RTA_GATEWAY"),
                             metric=r.get_attr("RTA_PRIORITY"), proto=_PROTO_NAMES.get(r["proto"], str(r["proto"])),
                             scope=r["scope"], prefsrc=r.get_attr("RTA_PREFSRC")))
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
    # vnet_hdr as libvirt does, so QEMU can use offloads; no packet-info header.
    _ignore((errno.EEXIST,), _ip().link, "add", ifname=name, kind="tuntap", mode="tap",
            ifr={"no_pi": True, "vnet_hdr": True})
    attrs = {"master": _index(master), "state": "up"}
    if mac:
        attrs["address"] = mac
    if mtu:
        attrs["mtu"] = mtu
    if group:
        attrs["group"] = group
    _ip().link("set", index=_index(name), **attrs)  # one request for all of it


def delete_group(group: int, names: list[str]) -> list[str]:
    """Delete the links `names` in one request when group `group` holds exactly those (never
    anyone else's); returns the names still to delete one by one."""
    members = {l.name for l in read_links().values() if l.group == group}
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
