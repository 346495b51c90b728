"""The ip6tables DNAT and MASQUERADE targets kvmnet encodes itself (host/iptables_nat6.py):
the kernel's layout, and decoding back to iptables-save's options. Loading them into a kernel
and reading them back with ip6tables-legacy-save: tests/integration/test_ipv6_netns.py."""

import struct

import pytest

from kvmnet.errors import HostError
from kvmnet.host import iptables_nat6 as nat6


def test_dnat_is_revision_2_with_an_nf_nat_range2():
    blob = nat6.target_blob("DNAT", [("to-destination", ["[fd00:62::10]:8086-8090"], False)])
    size, name, revision = struct.unpack_from("=H29sB", blob)
    assert (size, name.rstrip(b"\0"), revision) == (len(blob), b"DNAT", 2)
    assert len(blob) in (80, 76)  # XT_ALIGN(32 + 44): 8-byte (64-bit) or 4-byte (i386) alignment
    flags, lo_addr, hi_addr = struct.unpack_from("=I16s16s", blob, 32)
    assert flags == nat6.MAP_IPS | nat6.PROTO_SPECIFIED and lo_addr == hi_addr
    assert struct.unpack_from("!HH", blob, 32 + 36) == (8086, 8090)  # network byte order


@pytest.mark.parametrize("name, opts, args", [
    ("DNAT", [("to-destination", ["[fd00:62::10]:8086"], False)], ["--to-destination", "[fd00:62::10]:8086"]),
    ("DNAT", [("to-destination", ["[fd00::5]:5000-5002"], False)], ["--to-destination", "[fd00::5]:5000-5002"]),
    ("MASQUERADE", [("to-ports", ["1024-65535"], False)], ["--to-ports", "1024-65535"]),
    ("MASQUERADE", [], []),
])
def test_decoded_as_ip6tables_save_prints_them(name, opts, args):
    blob = nat6.target_blob(name, opts)
    assert nat6.target_args(name, blob[nat6.HEADER:nat6.HEADER + 40]) == args


@pytest.mark.parametrize("name, opts", [
    ("DNAT", [("to-destination", ["10.0.0.1:80"], False)]),  # not an IPv6 destination
    ("DNAT", [("to-destination", ["[fd00::1]:80"], True)]),  # inverted
    ("MASQUERADE", [("random", [], False)]),  # an option kvmnet never writes
])
def test_anything_else_is_refused_not_guessed(name, opts):
    with pytest.raises(HostError):
        nat6.target_blob(name, opts)
