"""The nftables ruleset generation of this network namespace: one netlink request (~0.1 ms).

The kernel bumps the generation on every committed nftables change, to any table. While it
has not moved since kvmnet last listed its table, the table is as listed then: a no-op apply
of 10,000 forwards skips the `nft -j list` (~130 ms) and its parsing. The stamp also names the
boot and the namespace, since generations restart at boot and each namespace counts its own.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_NETFILTER = 12
_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
_NEWGEN = (10 << 8) | 15
_NFTA_GEN_ID = 1


def stamp() -> str | None:
    """"<boot id>:<netns inode>:<generation>", or None when any part cannot be read."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        netns = os.stat("/proc/self/ns/net").st_ino
        gen = _generation(netns)
    except OSError:
        return None
    return None if gen is None else f"{boot}:{netns}:{gen}"


_sock: list = []  # the socket this process asks on, its last sequence number, and its namespace


def _generation(netns: int) -> int | None:
    """One NFT_MSG_GETGEN on a socket kept open: closing a netfilter socket right after a commit
    that removed something waits for the kernel's clean-up of it (host/nft_cmd.py, ~16 ms)."""
    if _sock and _sock[2] != netns:  # (a socket answers for the namespace it was made in)
        _sock.pop(0).close()
        _sock.clear()
    if not _sock:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        sock.settimeout(2)
        _sock[:] = [sock, 0, netns]
    sock, seq = _sock[0], _sock[1] + 1
    _sock[1] = seq
    try:
        body = struct.pack("BBH", socket.AF_UNSPEC, 0, 0)  # nfgenmsg: family, version, res_id
        sock.send(struct.pack("=IHHII", 16 + len(body), _GETGEN, 1, seq, 0) + body)  # NLM_F_REQUEST
        data = sock.recv(4096)
        while len(data) >= 16 and struct.unpack_from("=I", data, 8)[0] != seq:  # a late answer to a timed-out ask
            data = sock.recv(4096)
    except OSError:
        sock.close()
        _sock.clear()
        raise
    if len(data) < 20:
        return None
    length, kind = struct.unpack_from("=IH", data)
    if kind != _NEWGEN:
        return None  # an error (old kernel, no nf_tables): list instead
    pos = 20  # nlmsghdr + nfgenmsg
    while pos + 4 <= min(length, len(data)):
        alen, atype = struct.unpack_from("=HH", data, pos)
        if alen < 4:
            return None
        if atype & 0x3FFF == _NFTA_GEN_ID and alen >= 8:
            return struct.unpack_from(">I", data, pos + 4)[0]
        pos += (alen + 3) & ~3
    return None
