"""Read a classic pcap file (what QEMU's filter-dump and tcpdump -w write): the frames, and
which of them are DHCP or carry a given payload. Stdlib only."""

from __future__ import annotations

import struct
from pathlib import Path

ETHERNET = 1


def frames(path: Path) -> list[bytes]:
    """Every captured frame; AssertionError unless the file is a well-formed Ethernet pcap
    (a virtio-net header before each frame would break the Ethernet framing checked here)."""
    data = path.read_bytes()
    magic, = struct.unpack_from("<I", data)
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    _, _, _, _, _, snaplen, linktype = struct.unpack_from(order + "IHHiIII", data)
    assert linktype == ETHERNET, f"link type {linktype}"
    out, offset = [], 24
    while offset < len(data):
        _, _, caplen, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16: offset + 16 + caplen]
        assert len(frame) == caplen, "truncated record"
        out.append(frame)
        offset += 16 + caplen
    return out


def ipv4_udp_ports(frame: bytes) -> tuple[int, int] | None:
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    return struct.unpack_from("!HH", frame, 14 + ihl)


def dhcp_types(path: Path) -> list[int]:
    """DHCP message types (1 discover, 2 offer, 3 request, 5 ack) in capture order."""
    types = []
    for frame in frames(path):
        if ipv4_udp_ports(frame) in ((68, 67), (67, 68)):
            options = frame.find(b"\x63\x82\x53\x63")  # the DHCP magic cookie
            at = frame.find(b"\x35\x01", options)  # option 53, length 1
            if options > 0 and at > 0:
                types.append(frame[at + 2])
    return types


def containing(path: Path, needle: bytes) -> int:
    return sum(needle in frame for frame in frames(path))
