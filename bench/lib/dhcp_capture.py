"""DHCP exchanges read from a capture (tcpdump -w on a bridge): each DHCP message with the
capture's own timestamp, and one client's exchange (DISCOVER, OFFER, REQUEST, ACK) timed from
them, and the tcpdump that captures them. Stdlib only; reads classic pcap (micro- or nanosecond timestamps, either byte order)."""

from __future__ import annotations

import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DISCOVER, OFFER, REQUEST, ACK = 1, 2, 3, 5
NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
MAGIC_COOKIE = b"\x63\x82\x53\x63"


@dataclass
class Message:
    t: float  # seconds since the epoch, from the capture
    kind: int  # option 53
    xid: int
    mac: str  # chaddr
    rapid: bool = False  # option 80 (Rapid Commit) present


def records(path: Path):
    """(timestamp in seconds, frame) of each captured Ethernet frame."""
    data = path.read_bytes()
    magic, = struct.unpack_from("<I", data)
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    magic, = struct.unpack_from(order + "I", data)
    per_second = 1e9 if magic == 0xA1B23C4D else 1e6
    linktype, = struct.unpack_from(order + "I", data, 20)
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, not Ethernet")
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", data, offset)
        yield sec + frac / per_second, data[offset + 16: offset + 16 + caplen]
        offset += 16 + caplen


def dhcp_message(t: float, frame: bytes) -> Message | None:
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    if {sport, dport} != {67, 68}:
        return None
    bootp = frame[14 + ihl + 8:]
    if bootp[236:240] != MAGIC_COOKIE:
        return None
    at, kind, rapid = 240, None, False
    while at + 1 < len(bootp) and bootp[at] != 255:  # options: code, length, value
        if bootp[at] == 0:
            at += 1
            continue
        if bootp[at] == 53:
            kind = bootp[at + 2]
        rapid = rapid or bootp[at] == 80
        at += 2 + bootp[at + 1]
    if kind is None:
        return None
    xid, = struct.unpack_from("!I", bootp, 4)
    return Message(t, kind, xid, bootp[28:34].hex(":"), rapid)


def messages(path: Path) -> list[Message]:
    return [m for t, frame in records(path) if (m := dhcp_message(t, frame))]


def exchange(msgs: list[Message], mac: str) -> dict:
    """The client `mac`'s first completed exchange: the DISCOVER that got the first ACK's xid
    answered (the last one before its OFFER; earlier ones were lost or unanswered), in seconds
    since the epoch, plus how many DISCOVERs the client sent before it. With no OFFER of that
    xid and option 80 in the ACK, the server acknowledged the DISCOVER itself (rapid commit, RFC
    4039): "offer" and "request" are None."""
    own = [m for m in msgs if m.mac == mac.lower()]
    ack = next((m for m in own if m.kind == ACK), None)
    if ack is None:
        raise ValueError(f"no DHCP ACK for {mac} in the capture: {[(NAMES.get(m.kind), m.mac) for m in msgs]}")
    offer = next((m for m in own if m.kind == OFFER and m.xid == ack.xid), None)
    if offer is None and not ack.rapid:  # a 4-message exchange whose OFFER the capture lost
        raise ValueError(f"the ACK for {mac} answers an OFFER the capture does not hold (no rapid commit)")
    answered = offer or ack
    discover = [m for m in own if m.kind == DISCOVER and m.xid == ack.xid and m.t <= answered.t][-1]
    request = [m for m in own if m.kind == REQUEST and m.xid == ack.xid and m.t <= ack.t][-1] if offer else None
    return {"first_discover": next(m.t for m in own if m.kind == DISCOVER), "discover": discover.t,
            "offer": offer.t if offer else None, "request": request.t if request else None, "ack": ack.t,
            "discovers_sent": sum(1 for m in own if m.kind == DISCOVER and m.t <= answered.t)}


class Capture:
    """tcpdump on `iface` (in network namespace `netns`, if given), DHCP only, each packet
    handed over and written as it comes (--immediate-mode -U: otherwise libpcap holds packets
    back for up to a second, and a SIGTERM loses what it holds). `mac`: the client exchange()
    reads."""

    def __init__(self, iface: str, path: Path, mac: str | None = None, netns: str | None = None):
        self.path, self.mac = path, mac
        inside = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen([*inside, "tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-w", str(path),
                                      "--time-stamp-precision", "micro", "udp port 67 or udp port 68"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if "listening on" not in self.proc.stderr.readline():  # the filter is in place from here on
            raise RuntimeError(f"tcpdump did not start: {self.proc.stderr.read()[-500:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def exchange(self, timeout: float = 3) -> dict:
        """The client's exchange (exchange()), once tcpdump has written its ACK."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return exchange(messages(self.path), self.mac)
            except ValueError as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{exc} ({self.path.stat().st_size} bytes captured; tcpdump: "
                                       f"{self.proc.stderr.read()[-300:]!r})") from None
                time.sleep(0.05)


def intervals(ex: dict, start: float | None = None) -> dict:
    """Milliseconds between an exchange's timestamps, and from `start` (seconds since the epoch)
    to the first DISCOVER and to the ACK; plus how many DISCOVERs were sent, and whether the
    exchange was a rapid commit (DISCOVER, ACK)."""
    out = {"discover_to_ack": ex["ack"] - ex["discover"]}
    if ex["offer"] is not None:  # (rapid commit: the ACK answers the DISCOVER, no parts)
        out.update(discover_to_offer=ex["offer"] - ex["discover"], offer_to_request=ex["request"] - ex["offer"],
                   request_to_ack=ex["ack"] - ex["request"])
    if start is not None:
        out.update(start_to_discover=ex["first_discover"] - start, start_to_ack=ex["ack"] - start)
    return {k: round(v * 1000, 3) for k, v in out.items()} | {"discovers_sent": ex["discovers_sent"],
                                                              "rapid_commit": ex["offer"] is None}
