"""Stand in for QEMU on a tap: hold the tap open and copy its frames to and from a veth whose
other end is the "guest" namespace's eth0. The tap is kvmnet's own (made with vnet_hdr, so
opened with it): each frame carries a 10-byte virtio-net header saying whether its checksum is
still to be filled in (the host's stack leaves that to the NIC). The packet socket speaks the
same header (PACKET_VNET_HDR), so frames pass verbatim both ways, checksums completed by
whoever finally needs them. Run as `python taprelay.py TAP VETH` in the tap's namespace."""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_VNET_HDR = 263, 15


def main(tap: str, veth: str) -> None:
    """TAP: a tap's name, or a macvtap's /dev/tapN (vnet_hdr on by default, as for QEMU)."""
    if tap.startswith("/dev/"):
        fd = os.open(tap, os.O_RDWR)
    else:
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", tap.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    raw.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    raw.bind((veth, 0))
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([fd, raw], [], [])
        if fd in ready:
            frame = os.read(fd, 65536)
            raw.send(frame)
        if raw in ready:
            frame, addr = raw.recvfrom(65536)
            if addr[2] != PACKET_OUTGOING:  # what arrives from the guest, not what we sent
                os.write(fd, frame)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
