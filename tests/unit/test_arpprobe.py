"""host/arpprobe.py's reading of ARP frames (RFC 5227 2.1.1): any ARP from the probed address
(a reply, a request, an announcement), or another station's probe for it, names its sender; its
own link's frames and others' traffic do not. Frames fed through a socket pair."""

import socket
import struct
import time

import pytest

from kvmnet.host import arpprobe

OWN, OTHER = bytes.fromhex("525400000001"), bytes.fromhex("5254000000aa")
GATEWAY, GUEST, NOBODY = socket.inet_aton("10.95.0.1"), socket.inet_aton("10.95.0.77"), bytes(4)


def frame(op: int, sender: bytes, sender_ip: bytes, target_ip: bytes, ethertype: int = 0x0806) -> bytes:
    return (b"\xff" * 6 + sender + struct.pack("!H", ethertype) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
            + sender + sender_ip + bytes(6) + target_ip).ljust(60, b"\0")


def heard(*frames: bytes):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        for f in frames:
            a.send(f)
        return arpprobe._answer(b, GATEWAY, OWN, time.monotonic() + 0.05)


@pytest.mark.parametrize("op, sender_ip, target_ip", [
    (2, GATEWAY, NOBODY),   # its reply to the probe
    (1, GATEWAY, GUEST),    # a request it makes on its own
    (1, GATEWAY, GATEWAY),  # a gratuitous announcement
    (1, NOBODY, GATEWAY)])  # another station probing for the same address
def test_arp_from_the_address_names_its_sender(op, sender_ip, target_ip):
    assert heard(frame(op, OTHER, sender_ip, target_ip)) == "52:54:00:00:00:aa"


def test_other_traffic_and_this_links_own_frames_are_not_an_answer():
    assert heard(frame(2, OWN, GATEWAY, NOBODY),             # this link's own MAC
                 frame(1, OTHER, GUEST, GATEWAY),            # a guest asking for the gateway
                 frame(2, OTHER, GUEST, GATEWAY),            # a reply about another address
                 frame(2, OTHER, GATEWAY, NOBODY, 0x0800),   # not ARP
                 b"\xff" * 20) is None                        # short
    assert heard(frame(1, OTHER, GUEST, GATEWAY), frame(2, OTHER, GATEWAY, NOBODY)) == "52:54:00:00:00:aa"
