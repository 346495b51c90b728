"""The stdlib half of kvmnet's netlink seam: link/address/route dumps, tap creation and attach,
and QEMU's hook. kvmnet.host.netlink is the interface the rest of kvmnet calls; it sends changes
through pyroute2 and everything here through this module.

Why not pyroute2 here (measured on the project's 2-core VMs, see bench/):
- QEMU runs kvmnet's ifup hook on every guest start; importing pyroute2 alone takes 110-230 ms,
  this module ~1 ms.
- pyroute2 0.9 runs an asyncio loop per request (~1 ms) and decodes dumps at ~0.4 ms per link:
  1000 taps took 1.9 s to create and 0.43 s to read back, `ip -batch` 0.48 s in all.
So messages are hand-built here, one request per call and every reply checked. The codec
(build_*, parse_*) is pure, tested against pyroute2's own (tests/unit/test_rtnl.py); only
request and create_tap touch the kernel. Every failure is a NetlinkError (an OSError).
"""

from __future__ import annotations

import errno
import os
import struct

import _socket as socket  # the C module: `socket` also imports enum & co (~5 ms on the hook path)

from .netlink_error import NetlinkError

_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK, _RTM_GETADDR, _RTM_GETROUTE = 16, 17, 18, 22, 26
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP = 0x1, 0x4, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_MASTER = 1, 3, 4, 10
_IFLA_LINKINFO, _IFLA_GROUP, _IFLA_EXT_MASK = 18, 27, 29
_IFLA_INFO_KIND, _IFLA_INFO_DATA = 1, 2
_IFLA_BR_FORWARD_DELAY, _IFLA_BR_STP_STATE = 1, 5
_IFLA_TUN_MULTI_QUEUE = 7  # a u8 in a tun link's IFLA_INFO_DATA
_IFA_ADDRESS, _IFA_LOCAL, _IFA_LABEL, _IFA_BROADCAST, _IFA_CACHEINFO, _IFA_FLAGS, _IFA_RT_PRIORITY = 1, 2, 3, 4, 6, 8, 9
_FOREVER = 0xFFFFFFFF  # an address lifetime that never runs out
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PRIORITY, _RTA_PREFSRC, _RTA_TABLE = 1, 4, 5, 6, 7, 15
_RTEXT_FILTER_SKIP_STATS = 1 << 3
_IFF_UP = 0x1
# <linux/if_tun.h>
_TUNSETIFF, _TUNSETPERSIST = 0x400454CA, 0x400454CB
_IFF_TAP, _IFF_NO_PI, _IFF_VNET_HDR, _IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x4000, 0x0100
_IFINFOMSG, _IFADDRMSG, _RTMSG = "BxHiII", "BBBBI", "BBBBBBBBI"  # the fixed part of each message


# -- codec: attributes and messages ----------------------------------------------------------

def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


_NLA_HEADER = struct.Struct("HH")
# what parse_link reads of a link's ~50 attributes: the others are stepped over, not copied
# (1000 taps: a dump parses in ~half the time)
_LINK_ATTRS = frozenset({_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_MASTER, _IFLA_LINKINFO, _IFLA_GROUP})


def _attrs(data: bytes, offset: int = 0, wanted: frozenset | None = None) -> dict[int, bytes]:
    out, end, header = {}, len(data), _NLA_HEADER.unpack_from
    while offset + 4 <= end:
        length, kind = header(data, offset)
        if length < 4:
            break
        kind &= 0x3FFF  # strip NLA_F_NESTED / byte order
        if wanted is None or kind in wanted:
            out[kind] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


_U32 = struct.Struct("I")


def _u32(attrs: dict[int, bytes], kind: int, default=None):
    raw = attrs.get(kind)
    return default if raw is None else _U32.unpack(raw)[0]


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode()


def _message(msg_type: int, flags: int, body: bytes) -> bytes:
    return struct.pack("IHHII", 16 + len(body), msg_type, _NLM_F_REQUEST | flags, 1, 0) + body


def parse_replies(data: bytes, op: str) -> tuple[list[tuple[int, bytes]], bool]:
    """The (type, payload) of each message in one received buffer, and whether the reply is
    complete (NLMSG_DONE, or the ack of a non-dump request). An error raises NetlinkError, as
    does a dump the kernel cut short (its NLMSG_DONE carries the errno)."""
    out, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        payload = data[offset + 16:offset + length]
        offset += (length + 3) & ~3
        if kind == _NLMSG_DONE:  # a dump that failed part way says so here: -errno, 0 if whole
            code = struct.unpack_from("i", payload)[0] if len(payload) >= 4 else 0
            if code < 0:
                raise NetlinkError(-code, op)
            return out, True
        if kind == _NLMSG_ERROR:
            code = struct.unpack_from("i", payload)[0]
            if code:
                raise NetlinkError(-code, op)  # the kernel sends -errno
            return out, True
        out.append((kind, payload))
    return out, False


def build_set_link(index: int, *, master: int | None = None, mtu: int | None = None, up: bool | None = None,
                   mac: str | None = None, group: int | None = None) -> bytes:
    """One RTM_NEWLINK changing only the given attributes of link `index` (master 0 detaches)."""
    attrs = b""
    if mac:
        attrs += _attr(_IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
    if mtu is not None:
        attrs += _attr(_IFLA_MTU, struct.pack("I", mtu))
    if master is not None:
        attrs += _attr(_IFLA_MASTER, struct.pack("I", master))
    if group is not None:
        attrs += _attr(_IFLA_GROUP, struct.pack("I", group))
    flags = _IFF_UP if up else 0
    change = _IFF_UP if up is not None else 0  # the up/down state changes only when asked
    return _message(_RTM_NEWLINK, _NLM_F_ACK, struct.pack(_IFINFOMSG, socket.AF_UNSPEC, 0, index, flags, change) + attrs)


def build_delete_link(name: str) -> bytes:
    """Delete the link by its name (IFLA_IFNAME, index 0): the kernel resolves it, so no other
    link that took a freed index meanwhile is ever the one deleted."""
    return _delete_by(_attr(_IFLA_IFNAME, name.encode() + b"\0"))


def build_delete_group(group: int) -> bytes:
    """Delete every link of link group `group` (index 0, no name, IFLA_GROUP): one request."""
    return _delete_by(_attr(_IFLA_GROUP, struct.pack("I", group)))


def _delete_by(attr: bytes) -> bytes:
    return _message(_RTM_DELLINK, _NLM_F_ACK, struct.pack(_IFINFOMSG, socket.AF_UNSPEC, 0, 0, 0, 0) + attr)


def build_dump_links() -> bytes:
    return build_get_link(0, _NLM_F_DUMP)


def build_get_link(index: int, flags: int = _NLM_F_ACK) -> bytes:
    """One link, acked (the ack ends the reply as NLMSG_DONE ends a dump); every link with
    NLM_F_DUMP. Without their statistics: half the bytes."""
    skip_stats = _attr(_IFLA_EXT_MASK, struct.pack("I", _RTEXT_FILTER_SKIP_STATS))
    return _message(_RTM_GETLINK, flags, struct.pack(_IFINFOMSG, socket.AF_UNSPEC, 0, index, 0, 0) + skip_stats)


def build_dump_addrs() -> bytes:
    return _message(_RTM_GETADDR, _NLM_F_DUMP, struct.pack(_IFADDRMSG, socket.AF_UNSPEC, 0, 0, 0, 0))


def build_dump_routes(family: int) -> bytes:
    return _message(_RTM_GETROUTE, _NLM_F_DUMP, struct.pack(_RTMSG, family, 0, 0, 0, 0, 0, 0, 0, 0))


def build_ifreq(name: str, multi_queue: bool = False) -> bytes:
    """struct ifreq (40 bytes) for TUNSETIFF: a tap with vnet headers and no packet-info header;
    multi-queue when a guest opens it with queues > 1 (the kernel refuses a multi-queue open of a
    single-queue tap, and the flag cannot change while the tap exists)."""
    flags = _IFF_TAP | _IFF_NO_PI | _IFF_VNET_HDR | (_IFF_MULTI_QUEUE if multi_queue else 0)
    return struct.pack("16sH22x", name.encode(), flags)


def parse_link(payload: bytes) -> dict:
    """An RTM_NEWLINK: index, name, flags, mtu, master (index), mac, group, kind, stp, forward_delay."""
    _, _, index, flags, _ = struct.unpack_from(_IFINFOMSG, payload)
    a = _attrs(payload, 16, _LINK_ATTRS)
    link = {"index": index, "flags": flags, "name": _text(a[_IFLA_IFNAME]), "mtu": _u32(a, _IFLA_MTU, 0),
            "master": _u32(a, _IFLA_MASTER), "mac": a.get(_IFLA_ADDRESS, b"").hex(":"),
            "group": _u32(a, _IFLA_GROUP, 0), "kind": "", "stp": None, "forward_delay": None,
            "multi_queue": None}
    if _IFLA_LINKINFO in a:
        info = _attrs(a[_IFLA_LINKINFO])
        link["kind"] = _text(info.get(_IFLA_INFO_KIND, b""))
        if link["kind"] == "bridge" and _IFLA_INFO_DATA in info:
            data = _attrs(info[_IFLA_INFO_DATA])
            stp, delay = _u32(data, _IFLA_BR_STP_STATE), _u32(data, _IFLA_BR_FORWARD_DELAY)
            link["stp"] = None if stp is None else bool(stp)
            link["forward_delay"] = None if delay is None else delay // 100  # centiseconds
        if link["kind"] == "tun" and _IFLA_INFO_DATA in info:
            mq = _attrs(info[_IFLA_INFO_DATA]).get(_IFLA_TUN_MULTI_QUEUE)
            link["multi_queue"] = None if mq is None else bool(mq[0])
    return link


def parse_addr(payload: bytes) -> dict | None:
    """An RTM_NEWADDR: index, family (4/6), address, prefixlen, scope, and what `ip addr add`
    can set: label, broadcast, peer, flags (IFA_FLAGS), metric, and the seconds left of the
    valid and preferred lifetimes (None: forever). None without an address."""
    family, prefixlen, head_flags, scope, index = struct.unpack_from(_IFADDRMSG, payload)
    a = _attrs(payload, 8)
    raw = a.get(_IFA_LOCAL) or a.get(_IFA_ADDRESS)  # IFA_LOCAL: our end of a point-to-point link
    if not raw:
        return None
    ip = lambda kind: socket.inet_ntop(family, a[kind]) if kind in a else None  # noqa: E731
    address = socket.inet_ntop(family, raw)
    peer = ip(_IFA_ADDRESS) if _IFA_LOCAL in a else None
    preferred, valid = struct.unpack_from("II", a[_IFA_CACHEINFO]) if _IFA_CACHEINFO in a else (_FOREVER, _FOREVER)
    return {"index": index, "family": 4 if family == socket.AF_INET else 6, "address": address,
            "prefixlen": prefixlen, "scope": scope, "label": _text(a[_IFA_LABEL]) if _IFA_LABEL in a else None,
            "broadcast": ip(_IFA_BROADCAST), "peer": None if peer == address else peer,
            "flags": _u32(a, _IFA_FLAGS, head_flags), "metric": _u32(a, _IFA_RT_PRIORITY),
            "valid": None if valid == _FOREVER else valid, "preferred": None if preferred == _FOREVER else preferred}


def parse_route(payload: bytes) -> dict:
    """An RTM_NEWROUTE: dst, dst_len, table, proto, scope, type, oif, gateway, metric, prefsrc."""
    fam, dst_len, _, _, table, proto, scope, rtype, _ = struct.unpack_from(_RTMSG, payload)
    a = _attrs(payload, 12)
    ip = lambda kind: socket.inet_ntop(fam, a[kind]) if kind in a else None  # noqa: E731
    return {"dst": ip(_RTA_DST), "dst_len": dst_len, "table": _u32(a, _RTA_TABLE, table),  # RTA_TABLE: ids > 255
            "proto": proto, "scope": scope, "type": rtype, "oif": _u32(a, _RTA_OIF),
            "gateway": ip(_RTA_GATEWAY), "metric": _u32(a, _RTA_PRIORITY), "prefsrc": ip(_RTA_PREFSRC)}


# -- the kernel ------------------------------------------------------------------------------

def request(op: str, message: bytes, protocol: int = socket.NETLINK_ROUTE) -> list[tuple[int, bytes]]:
    """Send one request; return the (type, payload) of every reply message until the ack/done.
    `protocol`: rtnetlink, or another netlink family that answers alike (host/sockdiag.py)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.sendto(message, (0, 0))
            out, done = [], False
            while not done:
                part, done = parse_replies(sock.recv(1 << 20), op)
                out += part
            return out
        finally:
            sock.close()
    except NetlinkError:
        raise
    except OSError as exc:  # the socket itself failed
        raise NetlinkError(exc.errno or errno.EIO, op) from None


def set_link(name: str, *, master: int | None = None, mtu: int | None = None, up: bool | None = None,
             mac: str | None = None, group: int | None = None) -> None:
    """One request for all given attributes; master: the bridge's ifindex, 0 to detach.
    Raises NetlinkError (ENODEV if the link is gone)."""
    op = f"set link {name}"
    index = index_of(name)
    if index is None:
        raise NetlinkError(errno.ENODEV, op)
    request(op, build_set_link(index, master=master, mtu=mtu, up=up, mac=mac, group=group))


def delete_link(name: str) -> None:
    """Delete the link `name`; one already gone is fine. Deleting a link waits for the kernel's
    RCU grace period (~15-20 ms on the project's VM): the request returns when it is gone."""
    _gone_is_done(f"delete link {name}", build_delete_link(name))


def delete_group(group: int) -> None:
    """Delete the links of link group `group` (the kernel answers ENODEV for an empty group:
    done). The caller checks the group holds only its own links."""
    _gone_is_done(f"delete link group {group}", build_delete_group(group))


def _gone_is_done(op: str, message: bytes) -> None:
    try:
        request(op, message)
    except NetlinkError as exc:
        if exc.errno != errno.ENODEV:
            raise


def create_tap(name: str, multi_queue: bool = False) -> bool:
    """A persistent tap with vnet headers and no packet-info header (as libvirt makes them, so
    QEMU can use offloads), by ioctl as `ip tuntap` does. False if it already exists."""
    if index_of(name) is not None:
        return False
    import fcntl

    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
        try:
            fcntl.ioctl(fd, _TUNSETIFF, build_ifreq(name, multi_queue))
            fcntl.ioctl(fd, _TUNSETPERSIST, 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise NetlinkError(exc.errno or errno.EIO, f"create tap {name}") from None
    return True


def index_of(name: str) -> int | None:
    """The link's ifindex, None if there is none (an ioctl: no netlink dump per lookup)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:  # "no interface with this name" (no errno set)
        return None


def read_mtu(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def dump_links() -> list[dict]:
    return [parse_link(p) for kind, p in request("dump links", build_dump_links()) if kind == _RTM_NEWLINK]


def get_link(name: str) -> dict | None:
    """parse_link() of the link called `name`, None if there is none (gone, or its index now
    another link's)."""
    index = index_of(name)
    if index is None:
        return None
    try:
        replies = request(f"get link {name}", build_get_link(index))
    except NetlinkError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise
    found = [parse_link(p) for kind, p in replies if kind == _RTM_NEWLINK]
    return found[0] if found and found[0]["name"] == name else None


def dump_addrs() -> list[dict]:
    return [a for _, p in request("dump addresses", build_dump_addrs()) if (a := parse_addr(p))]


def dump_routes(family: int) -> list[dict]:
    """Routes of one family (socket.AF_INET/AF_INET6), every table."""
    return [parse_route(p) for _, p in request("dump routes", build_dump_routes(family))]
