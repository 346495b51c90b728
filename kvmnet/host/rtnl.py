"""One rtnetlink request, stdlib only: attach a tap to a bridge, set its MTU and state.

QEMU runs kvmnet's ifup hook on every guest start, so the hook must cost about what a bash
`ip link set` costs. Importing pyroute2 alone takes 150-230 ms; this request takes microseconds.
Everything else in kvmnet uses pyroute2 (kvmnet/host/netlink.py).
"""

from __future__ import annotations

import errno
import os
import struct

import _socket as socket  # the C module: `socket` also imports enum & co (~5 ms on this path)

_RTM_NEWLINK = 16
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_NLMSG_ERROR = 2
_IFLA_MTU, _IFLA_MASTER = 4, 10
_IFF_UP = 0x1


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def set_link(name: str, *, master: int | None = None, mtu: int | None = None, up: bool | None = None) -> None:
    """master: the bridge's ifindex, 0 to detach. Raises OSError (ENODEV if the link is gone)."""
    index = index_of(name)
    if index is None:
        raise OSError(errno.ENODEV, f"{name}: no such interface")
    attrs = b""
    if mtu is not None:
        attrs += _attr(_IFLA_MTU, struct.pack("I", mtu))
    if master is not None:
        attrs += _attr(_IFLA_MASTER, struct.pack("I", master))
    flags = _IFF_UP if up else 0
    change = _IFF_UP if up is not None else 0
    ifinfo = struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, flags, change)
    body = ifinfo + attrs
    header = struct.pack("IHHII", 16 + len(body), _RTM_NEWLINK, _NLM_F_REQUEST | _NLM_F_ACK, 1, 0)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.sendto(header + body, (0, 0))
        reply = sock.recv(65536)
    finally:
        sock.close()
    kind = struct.unpack_from("H", reply, 4)[0]
    if kind == _NLMSG_ERROR:
        code = struct.unpack_from("i", reply, 16)[0]
        if code:
            raise OSError(-code, f"{name}: {os.strerror(-code)}")


def index_of(name: str) -> int | None:
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


def master_of(name: str) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{name}/master"))
    except OSError:
        return None
