"""bench/lib/dhcp_capture.py: DHCP messages and their timestamps from a pcap, and which DISCOVER
belongs to the exchange that got the lease (section 11 times DISCOVER -> ACK from it)."""

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.lib.dhcp_capture import exchange, intervals, messages  # noqa: E402

CLIENT, OTHER = "52:54:00:4b:4c:01", "52:54:00:00:00:02"


def dhcp_frame(kind: int, xid: int, mac: str, rapid: bool = False) -> bytes:
    """Ethernet + IPv4 + UDP + BOOTP with option 53 (and 80, `rapid`); checksums are not read."""
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    bootp = struct.pack("!BBBBI", 1, 1, 6, 0, xid) + bytes(20) + chaddr + bytes(192)
    bootp += b"\x63\x82\x53\x63" + bytes([53, 1, kind]) + (bytes([80, 0]) if rapid else b"") + bytes([255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = bytes([0x45, 0]) + struct.pack("!H", 20 + len(udp)) + bytes(5) + bytes([17]) + bytes(10)
    return b"\xff" * 6 + bytes(6) + b"\x08\x00" + ip + udp


def pcap(path: Path, packets: list[tuple[float, bytes]], nanoseconds: bool = False) -> Path:
    magic, per_second = (0xA1B23C4D, 10**9) if nanoseconds else (0xA1B2C3D4, 10**6)
    data = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for t, frame in packets:
        sec = int(t)
        data += struct.pack("<IIII", sec, round((t - sec) * per_second), len(frame), len(frame)) + frame
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("nanoseconds", [False, True])
def test_the_answered_discover_starts_the_exchange(tmp_path, nanoseconds):
    t0 = 1_700_000_000.0
    packets = [(t0, dhcp_frame(1, 7, CLIENT)),            # lost (no OFFER for it)
               (t0 + 0.5, dhcp_frame(1, 7, OTHER)),       # another client's
               (t0 + 1.0, dhcp_frame(1, 7, CLIENT)),      # the answered one
               (t0 + 1.0004, dhcp_frame(2, 7, CLIENT)),
               (t0 + 1.0304, dhcp_frame(3, 7, CLIENT)),
               (t0 + 1.0316, dhcp_frame(5, 7, CLIENT))]
    ex = exchange(messages(pcap(tmp_path / "c.pcap", packets, nanoseconds)), CLIENT)
    assert ex["discovers_sent"] == 2
    got = intervals(ex, start=t0 - 2)
    assert got == {"discover_to_ack": pytest.approx(31.6, abs=0.01), "discover_to_offer": pytest.approx(0.4, abs=0.01),
                   "offer_to_request": pytest.approx(30.0, abs=0.01), "request_to_ack": pytest.approx(1.2, abs=0.01),
                   "start_to_discover": pytest.approx(2000.0, abs=0.01),
                   "start_to_ack": pytest.approx(3031.6, abs=0.01), "discovers_sent": 2, "rapid_commit": False}


def test_a_rapid_commit_is_a_discover_answered_by_an_ack(tmp_path):
    t0 = 1_700_000_000.0
    packets = [(t0, dhcp_frame(1, 9, CLIENT)),            # lost
               (t0 + 1.0, dhcp_frame(1, 9, CLIENT, rapid=True)),  # answered by the ACK itself
               (t0 + 1.0015, dhcp_frame(5, 9, CLIENT, rapid=True))]
    got = intervals(exchange(messages(pcap(tmp_path / "c.pcap", packets)), CLIENT), start=t0)
    assert got == {"discover_to_ack": pytest.approx(1.5, abs=0.01), "start_to_discover": 0.0,
                   "start_to_ack": pytest.approx(1001.5, abs=0.01), "discovers_sent": 2, "rapid_commit": True}


def test_an_ack_without_its_offer_or_option_80_is_not_read_as_a_rapid_commit(tmp_path):
    packets = [(1.0, dhcp_frame(1, 4, CLIENT)), (1.03, dhcp_frame(3, 4, CLIENT)), (1.031, dhcp_frame(5, 4, CLIENT))]
    with pytest.raises(ValueError, match="answers an OFFER the capture does not hold"):
        exchange(messages(pcap(tmp_path / "c.pcap", packets)), CLIENT)


def test_no_ack_says_what_was_captured(tmp_path):
    path = pcap(tmp_path / "c.pcap", [(1.0, dhcp_frame(1, 1, CLIENT)), (1.1, b"\x00" * 60)])
    with pytest.raises(ValueError, match=r"no DHCP ACK for 52:54:00:4b:4c:01 in the capture: \[\('DISCOVER', "):
        exchange(messages(path), CLIENT)
