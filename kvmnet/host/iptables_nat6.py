"""The ip6tables DNAT and MASQUERADE targets as rule-blob bytes, built here rather than by
libxtables (through python-iptables).

Why: since iptables 1.8.9 DNAT, SNAT, MASQUERADE and REDIRECT live in one library,
libxt_NAT.so, whose init registers them for the address family current when it is loaded.
kvmnet writes the IPv4 tables first, so in the same process libxtables never learns the IPv6
variants ("can't find target DNAT"), and running the init again aborts the process ("target
already registered", python-iptables issue #135). The two targets kvmnet uses on IPv6 are
small fixed structs, so they are encoded directly: the kernel's xt_entry_target header and a
struct nf_nat_range2 (DNAT revision 2, Linux 4.19+, what ip6tables 1.8.9 itself writes and the
only IPv6 revision its save tool prints) or nf_nat_range (MASQUERADE revision 0).
ip6tables-legacy-save prints them exactly as it prints what ip6tables itself loads.
"""

from __future__ import annotations

import ctypes
import struct
from ipaddress import IPv6Address

from ..errors import HostError

NAME_LEN = 29  # XT_EXTENSION_MAXNAMELEN
HEADER = 32  # sizeof(struct xt_entry_target): u16 size, name, u8 revision
MAP_IPS, PROTO_SPECIFIED = 0x1, 0x2  # NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED
REVISION = {"DNAT": 2, "MASQUERADE": 0}
DATA_SIZE = {"DNAT": 44, "MASQUERADE": 40}  # sizeof(struct nf_nat_range2), sizeof(struct nf_nat_range)


def _align(n: int) -> int:
    """XT_ALIGN: a multiple of the C alignment of u_int64_t (8 on 64-bit hosts, 4 on i386)."""
    a = ctypes.alignment(ctypes.c_uint64)
    return (n + a - 1) & ~(a - 1)


def _ports(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def _range(name: str, opts: list) -> tuple[int, bytes, tuple[int, int]]:
    """(flags, address, (min port, max port)) from iptables-save's options."""
    given = {opt: values for opt, values, inv in opts if not inv}
    if len(given) != len(opts) or len(opts) > 1:
        raise HostError(f"ip6tables {name}: options {opts!r} are not ones kvmnet writes")
    if name == "MASQUERADE":
        if not given:
            return 0, bytes(16), (0, 0)
        return PROTO_SPECIFIED, bytes(16), _ports(given["to-ports"][0])
    dest = given.get("to-destination", [""])[0]
    if not dest.startswith("["):
        raise HostError(f"ip6tables DNAT needs --to-destination [address]:port, not {dest!r}")
    addr, _, port = dest[1:].partition("]:")
    return MAP_IPS | PROTO_SPECIFIED, IPv6Address(addr).packed, _ports(port)


def target_blob(name: str, opts: list) -> bytes:
    """xt_entry_target {u16 size, char name[29], u8 revision} + struct nf_nat_range{,2} {u32 flags,
    in6 min_addr, in6 max_addr, be16 min_proto, be16 max_proto[, be16 base_proto]}, padded to XT_ALIGN."""
    try:
        flags, addr, (lo, hi) = _range(name, opts)
    except (ValueError, KeyError, IndexError) as exc:
        raise HostError(f"ip6tables {name}: cannot encode {opts!r}: {exc}") from exc
    data = (struct.pack("=I16s16s", flags, addr, addr) + struct.pack("!HH", lo, hi)).ljust(DATA_SIZE[name], b"\0")
    size = _align(HEADER + len(data))
    head = struct.pack("=H", size) + name.encode().ljust(NAME_LEN, b"\0") + bytes([REVISION[name]])
    return (head + data).ljust(size, b"\0")


def target_args(name: str, data: bytes) -> list[str]:
    """The options iptables-save prints for such a target, from the first 40 bytes of its data
    (after the header): for libip6tc's decoding, where libxtables cannot print them either."""
    flags, addr = struct.unpack_from("=I16s", data)
    lo, hi = struct.unpack_from("!HH", data, 36)
    ports = str(lo) if lo == hi else f"{lo}-{hi}"
    if name == "DNAT":
        return ["--to-destination", f"[{IPv6Address(addr)}]:{ports}"]
    return ["--to-ports", ports] if flags & PROTO_SPECIFIED else []
