"""Who else answers for an IPv4 address on a link: an ARP probe (RFC 5227, address conflict
detection) through a packet socket.

Used before a stretched network's gateway address is added on its gateway host: while the file's
gateway_host moves from one host to another, the old one still holds the address (and runs the
network's dnsmasq) until its own apply gives them up, and two gateways on one segment (with one
MAC: the network's) flap frames between hosts and hand out leases twice. A probe's sender address is 0.0.0.0, so no neighbour
learns anything from it; it changes nothing on this host either.
"""

from __future__ import annotations

import select
import socket
import struct
import time

ETH_P_ARP = 0x0806
_ARP_IPV4 = struct.pack("!HHBB", 1, 0x0800, 6, 4)  # Ethernet, IPv4, address lengths
_ETHERTYPE = struct.pack("!H", ETH_P_ARP)


def holder(dev: str, ip: str, probes: int = 3, wait: float = 0.3) -> str | None:
    """The MAC of a station that sends ARP from `ip` on `dev` (answers the probe, or asks or
    announces on its own), or probes for `ip` itself; None when none did within `probes` x `wait`
    seconds (RFC 5227's three probes, closer together than its 1-2 s: an apply waits for them),
    or `dev` cannot send (gone, down)."""
    target = socket.inet_aton(ip)
    try:  # protocol 0 until bound: a socket made for ETH_P_ARP would queue every link's ARP until then
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except OSError:
        return None
    with sock:
        try:
            sock.bind((dev, ETH_P_ARP))
            mac = sock.getsockname()[4]
            probe = (b"\xff" * 6 + mac + _ETHERTYPE + _ARP_IPV4 + struct.pack("!H", 1)
                     + mac + bytes(4) + bytes(6) + target).ljust(60, b"\0")
            for _ in range(probes):
                sock.send(probe)
                found = _answer(sock, target, mac, time.monotonic() + wait)
                if found:
                    return found
        except OSError:
            return None
    return None


def _answer(sock: socket.socket, target: bytes, own: bytes, deadline: float) -> str | None:
    """The sender of an ARP frame from `target`, or of another station's probe for it, read
    until `deadline` (frames from `own`, this link's MAC, are not another station's)."""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return None
        frame = sock.recv(128)
        arp = frame[14:42]
        if len(arp) < 28 or frame[12:14] != _ETHERTYPE or arp[:6] != _ARP_IPV4:
            continue
        sender, sender_ip, target_ip = arp[8:14], arp[14:18], arp[24:28]
        if sender == own:
            continue
        # RFC 5227 2.1.1: any ARP from the address (a reply, a request, an announcement), or
        # another station's probe for it
        if sender_ip == target or (sender_ip == bytes(4) and target_ip == target):
            return ":".join(f"{b:02x}" for b in sender)
    return None
