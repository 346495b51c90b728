"""Listening TCP sockets through NETLINK_SOCK_DIAG, as `ss -lt` reads them.

/proc/net/tcp and tcp6 walk the whole established-connections hash of the kernel, however few
sockets this namespace has: ~4 ms each on the project's VM, read by every apply of a topology
with forwards (is a forwarded port taken?). A sock_diag dump asking for LISTEN sockets only
walks the listening hash: ~0.1 ms for both families. The codec is pure (tested on crafted
replies); `listening` is None when the kernel offers no inet_diag, for /proc to answer.
"""

from __future__ import annotations

import struct

import _socket as socket

from . import rtnl

_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_TCP_LISTEN = 10
# struct inet_diag_req_v2: family, protocol, ext, pad, states; then an all-zero inet_diag_sockid
_REQUEST = struct.Struct("=BBBxI48x")
# struct inet_diag_msg: family, state, timer, retrans; sockid (sport, dport big-endian, ...);
# expires, rqueue, wqueue, uid, inode
_SPORT_AT, _INODE_AT, _MSG_LEN = 4, 68, 72


def build_request(family: int) -> bytes:
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
    return struct.pack("=IHHII", 16 + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + body


def parse_sockets(replies: list[tuple[int, bytes]]) -> dict[int, set[str]]:
    """port -> the inodes of the listening sockets bound to it, from one dump's messages."""
    out: dict[int, set[str]] = {}
    for kind, payload in replies:
        if kind != _SOCK_DIAG_BY_FAMILY or len(payload) < _MSG_LEN or payload[1] != _TCP_LISTEN:
            continue
        port = struct.unpack_from("!H", payload, _SPORT_AT)[0]
        out.setdefault(port, set()).add(str(struct.unpack_from("=I", payload, _INODE_AT)[0]))
    return out


def listening() -> dict[int, set[str]] | None:
    """port -> inodes of this namespace's listening TCP sockets (IPv4 and IPv6), or None when
    sock_diag cannot answer (no inet_diag in this kernel)."""
    out: dict[int, set[str]] = {}
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            for port, inodes in parse_sockets(_dump(family)).items():
                out.setdefault(port, set()).update(inodes)
    except OSError:  # (NetlinkError is one) EPROTONOSUPPORT, ENOENT: /proc/net/tcp then
        return None
    return out


def _dump(family: int) -> list[tuple[int, bytes]]:
    return rtnl.request("sock_diag dump", build_request(family), _NETLINK_SOCK_DIAG)
