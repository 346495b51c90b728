"""kvmnet.host.rtnl's codec against an independent one, pyroute2's: pyroute2 decodes what rtnl
builds and encodes what rtnl parses. No root, no socket to the kernel (the I/O loop is fed
canned replies)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, nlmsg, nlmsgerr
from pyroute2.netlink.rtnl import (RTM_DELLINK, RTM_GETADDR, RTM_GETLINK, RTM_GETROUTE, RTM_NEWADDR, RTM_NEWLINK,
                                   RTM_NEWROUTE)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFT_NO_PI, IFT_TAP, IFT_VNET_HDR, ifinfmsg
from pyroute2.netlink.rtnl.ifinfmsg import tuntap as pyroute2_tuntap
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from kvmnet.host import rtnl
from kvmnet.host.netlink_error import NetlinkError


def _decoded(cls, data: bytes):
    msg = cls(data)
    msg.decode()
    assert msg["header"]["length"] == len(data)
    return msg


def _attrs(msg) -> list[tuple]:
    return [(nla[0], nla[1]) for nla in msg["attrs"]]  # pyroute2's nla objects, as plain pairs


def _encoded(msg, msg_type: int) -> bytes:
    msg["header"]["type"] = msg_type
    msg.encode()
    return msg.data


def _done() -> bytes:
    return _encoded(nlmsg(), NLMSG_DONE)


def _error(code: int) -> bytes:
    msg = nlmsgerr()
    msg["error"] = code
    return _encoded(msg, 2)


def _payloads(*messages: bytes) -> list[bytes]:
    """Messages as one dump reply, through rtnl's reply parser."""
    out, done = rtnl.parse_replies(b"".join(messages) + _done(), "dump")
    assert done and [kind for kind, _ in out] == [struct.unpack_from("IH", m)[1] for m in messages]
    return [payload for _, payload in out]


# -- what rtnl builds -------------------------------------------------------------------------

def test_set_link_carries_every_given_attribute_in_one_request():
    msg = _decoded(ifinfmsg, rtnl.build_set_link(7, master=3, mtu=1400, up=True, mac="52:54:00:ab:cd:ef", group=9))
    assert msg["header"]["type"] == RTM_NEWLINK
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, 7, 1, 1)
    assert _attrs(msg) == [("IFLA_ADDRESS", "52:54:00:ab:cd:ef"), ("IFLA_MTU", 1400),
                            ("IFLA_MASTER", 3), ("IFLA_GROUP", 9)]


def test_set_link_detach_and_down_as_the_hook_sends_it():
    msg = _decoded(ifinfmsg, rtnl.build_set_link(12, master=0, up=False))
    assert (msg["index"], msg["flags"], msg["change"]) == (12, 0, 1)  # IFF_UP cleared, and changed
    assert _attrs(msg) == [("IFLA_MASTER", 0)]


def test_set_link_leaves_the_up_state_alone_unless_asked():
    msg = _decoded(ifinfmsg, rtnl.build_set_link(5, mtu=9000))
    assert (msg["flags"], msg["change"]) == (0, 0)
    assert _attrs(msg) == [("IFLA_MTU", 9000)]


def test_dump_requests():
    links = _decoded(ifinfmsg, rtnl.build_dump_links())
    assert (links["header"]["type"], links["header"]["flags"]) == (RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP)
    assert _attrs(links) == [("IFLA_EXT_MASK", 8)]  # RTEXT_FILTER_SKIP_STATS
    addrs = _decoded(ifaddrmsg, rtnl.build_dump_addrs())
    assert (addrs["header"]["type"], addrs["header"]["flags"], addrs["family"]) == (RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 0)
    for family in (socket.AF_INET, socket.AF_INET6):
        routes = _decoded(rtmsg, rtnl.build_dump_routes(family))
        assert (routes["header"]["type"], routes["header"]["flags"]) == (RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP)
        assert (routes["family"], routes["table"], _attrs(routes)) == (family, 0, [])


def test_tap_ifreq_matches_pyroute2s():
    ifreq = rtnl.build_ifreq("kn-web-0")
    assert len(ifreq) == 40  # sizeof(struct ifreq): the kernel copies all of it
    theirs = b"kn-web-0".ljust(16, b"\0") + struct.pack("H", IFT_TAP | IFT_NO_PI | IFT_VNET_HDR)
    assert ifreq == theirs + bytes(22)
    assert (rtnl._TUNSETIFF, rtnl._TUNSETPERSIST) == (pyroute2_tuntap.TUNSETIFF, pyroute2_tuntap.TUNSETPERSIST)
    multi = rtnl.build_ifreq("kn-web-0", multi_queue=True)
    flags = IFT_TAP | IFT_NO_PI | IFT_VNET_HDR | pyroute2_tuntap.IFT_MULTI_QUEUE
    assert multi == b"kn-web-0".ljust(16, b"\0") + struct.pack("H", flags) + bytes(22)


# -- what rtnl parses -------------------------------------------------------------------------

def _link(index: int, flags: int, attrs: list) -> bytes:
    msg = ifinfmsg()
    msg["index"], msg["flags"], msg["attrs"] = index, flags, attrs
    return _encoded(msg, RTM_NEWLINK)


def test_parse_links_bridge_tap_and_veth():
    bridge = _link(3, 0x1003, [("IFLA_IFNAME", "virbr0"), ("IFLA_MTU", 1500), ("IFLA_ADDRESS", "52:54:00:00:00:01"),
                               ("IFLA_GROUP", 0), ("IFLA_LINKINFO", {"attrs": [
                                   ("IFLA_INFO_KIND", "bridge"),
                                   ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_FORWARD_DELAY", 1500), ("IFLA_BR_STP_STATE", 1)]})]})])
    tap = _link(9, 0x1002, [("IFLA_IFNAME", "kn-web-0"), ("IFLA_MTU", 1400), ("IFLA_MASTER", 3),
                            ("IFLA_ADDRESS", "fe:54:00:12:34:56"), ("IFLA_GROUP", 4242)])
    veth = _link(10, 0, [("IFLA_IFNAME", "v0"), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]})])
    got = [rtnl.parse_link(p) for p in _payloads(bridge, tap, veth)]
    assert got == [
        {"index": 3, "flags": 0x1003, "name": "virbr0", "mtu": 1500, "master": None, "mac": "52:54:00:00:00:01",
         "group": 0, "kind": "bridge", "stp": True, "forward_delay": 15, "multi_queue": None},
        {"index": 9, "flags": 0x1002, "name": "kn-web-0", "mtu": 1400, "master": 3, "mac": "fe:54:00:12:34:56",
         "group": 4242, "kind": "", "stp": None, "forward_delay": None, "multi_queue": None},
        {"index": 10, "flags": 0, "name": "v0", "mtu": 0, "master": None, "mac": "",
         "group": 0, "kind": "veth", "stp": None, "forward_delay": None, "multi_queue": None},
    ]


@pytest.mark.parametrize("mq", [0, 1])
def test_parse_a_taps_multi_queue_flag(mq):
    """A tap's IFF_MULTI_QUEUE cannot change while it exists: observe it, so a tap deleted by a
    plan is made again as it was."""
    tap = _link(9, 0x1002, [("IFLA_IFNAME", "kn-web-0"), ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "tun"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_TUN_TYPE", 2), ("IFLA_TUN_MULTI_QUEUE", mq)]})]})])
    (got,) = [rtnl.parse_link(p) for p in _payloads(tap)]
    assert (got["kind"], got["multi_queue"]) == ("tun", bool(mq))


def _addr(family: int, prefixlen: int, scope: int, index: int, attrs: list) -> bytes:
    msg = ifaddrmsg()
    msg["family"], msg["prefixlen"], msg["scope"], msg["index"], msg["attrs"] = family, prefixlen, scope, index, attrs
    return _encoded(msg, RTM_NEWADDR)


def test_parse_addresses():
    v4 = _addr(socket.AF_INET, 24, 0, 3, [("IFA_ADDRESS", "192.168.122.1"), ("IFA_LOCAL", "192.168.122.1")])
    ptp = _addr(socket.AF_INET, 32, 0, 4, [("IFA_ADDRESS", "10.9.0.2"), ("IFA_LOCAL", "10.9.0.1")])  # our end: LOCAL
    v6 = _addr(socket.AF_INET6, 64, 253, 3, [("IFA_ADDRESS", "fe80::5054:ff:fe00:1")])
    bare = _addr(socket.AF_INET, 8, 0, 1, [("IFA_LABEL", "lo")])
    got = [rtnl.parse_addr(p) for p in _payloads(v4, ptp, v6, bare)]
    plain = {"label": None, "broadcast": None, "peer": None, "flags": 0, "metric": None, "valid": None, "preferred": None}
    assert got == [
        {"index": 3, "family": 4, "address": "192.168.122.1", "prefixlen": 24, "scope": 0, **plain},
        {"index": 4, "family": 4, "address": "10.9.0.1", "prefixlen": 32, "scope": 0, **plain, "peer": "10.9.0.2"},
        {"index": 3, "family": 6, "address": "fe80::5054:ff:fe00:1", "prefixlen": 64, "scope": 253, **plain},
        None,
    ]


def test_parse_address_attributes_ip_addr_add_can_set():
    """label, brd, noprefixroute (IFA_FLAGS, beyond the header's 8 bits), metric and a DHCP
    lease's lifetimes (seconds left, as the kernel reports them)."""
    cache = {"ifa_preferred": 1800, "ifa_valid": 3600, "cstamp": 5, "tstamp": 7}
    v4 = _addr(socket.AF_INET, 24, 0, 3, [("IFA_ADDRESS", "10.9.0.51"), ("IFA_LOCAL", "10.9.0.51"),
                                          ("IFA_LABEL", "eth0:1"), ("IFA_BROADCAST", "10.9.0.255"),
                                          ("IFA_FLAGS", 0x200 | 0x1), ("IFA_RT_PRIORITY", 77),
                                          ("IFA_CACHEINFO", cache)])
    forever = {"ifa_preferred": 0xFFFFFFFF, "ifa_valid": 0xFFFFFFFF, "cstamp": 5, "tstamp": 7}
    v6 = _addr(socket.AF_INET6, 64, 0, 3, [("IFA_ADDRESS", "2001:db8:9::50"), ("IFA_CACHEINFO", forever)])
    got = [rtnl.parse_addr(p) for p in _payloads(v4, v6)]
    assert got[0] == {"index": 3, "family": 4, "address": "10.9.0.51", "prefixlen": 24, "scope": 0,
                      "label": "eth0:1", "broadcast": "10.9.0.255", "peer": None, "flags": 0x201, "metric": 77,
                      "valid": 3600, "preferred": 1800}
    assert (got[1]["valid"], got[1]["preferred"], got[1]["flags"]) == (None, None, 0)


def _route(family: int, dst_len: int, table: int, proto: int, scope: int, attrs: list) -> bytes:
    msg = rtmsg()
    msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["scope"], msg["type"] = family, dst_len, table, proto, scope, 1
    msg["attrs"] = attrs
    return _encoded(msg, RTM_NEWROUTE)


def test_parse_routes():
    v4 = _route(socket.AF_INET, 24, 254, 4, 0, [("RTA_TABLE", 254), ("RTA_DST", "10.1.0.0"), ("RTA_OIF", 3),
                                                ("RTA_GATEWAY", "192.168.122.2"), ("RTA_PRIORITY", 100),
                                                ("RTA_PREFSRC", "192.168.122.1")])
    default6 = _route(socket.AF_INET6, 0, 252, 3, 0, [("RTA_TABLE", 1000), ("RTA_OIF", 5),  # table id > 255
                                                      ("RTA_GATEWAY", "fd00::1")])
    got = [rtnl.parse_route(p) for p in _payloads(v4, default6)]
    assert got == [
        {"dst": "10.1.0.0", "dst_len": 24, "table": 254, "proto": 4, "scope": 0, "type": 1, "oif": 3,
         "gateway": "192.168.122.2", "metric": 100, "prefsrc": "192.168.122.1"},
        {"dst": None, "dst_len": 0, "table": 1000, "proto": 3, "scope": 0, "type": 1, "oif": 5,
         "gateway": "fd00::1", "metric": None, "prefsrc": None},
    ]


# -- replies: acks, errors, multi-part dumps ----------------------------------------------------

def test_ack_ends_a_request():
    assert rtnl.parse_replies(_error(0), "set link t0") == ([], True)


def test_negative_errno_becomes_the_one_error_type():
    with pytest.raises(NetlinkError) as caught:
        rtnl.parse_replies(_error(-errno.EEXIST), "set link t0")
    exc = caught.value
    assert isinstance(exc, OSError)
    assert (exc.errno, exc.strerror, exc.op) == (errno.EEXIST, "File exists", "set link t0")
    assert str(exc) == "set link t0: File exists"


def test_a_dump_cut_short_is_an_error_not_a_short_list():
    failed = struct.pack("IHHIIi", 20, NLMSG_DONE, 2, 1, 0, -errno.ENOENT)  # what netlink_dump_done sends
    with pytest.raises(NetlinkError) as caught:
        rtnl.parse_replies(_link(1, 0, [("IFLA_IFNAME", "lo")]) + failed, "sock_diag dump")
    assert caught.value.errno == errno.ENOENT
    whole = struct.pack("IHHIIi", 20, NLMSG_DONE, 2, 1, 0, 0)
    assert rtnl.parse_replies(whole, "dump links") == ([], True)


def test_a_dump_goes_on_until_done():
    part = _link(1, 0, [("IFLA_IFNAME", "lo")])
    assert rtnl.parse_replies(part, "dump links") == ([(RTM_NEWLINK, part[16:])], False)


class _FakeSocket:
    """Replies in chunks, as the kernel sends a long dump in several datagrams."""

    def __init__(self, chunks: list[bytes]):
        self.chunks, self.sent, self.closed = list(chunks), [], False

    def setsockopt(self, *args):
        pass

    def sendto(self, data, addr):
        self.sent.append(data)

    def recv(self, size):
        return self.chunks.pop(0)

    def close(self):
        self.closed = True


def test_request_reads_a_dump_split_over_datagrams(monkeypatch):
    lo, eth = _link(1, 0x9, [("IFLA_IFNAME", "lo")]), _link(2, 0x1003, [("IFLA_IFNAME", "eth0")])
    fake = _FakeSocket([lo, eth + _done()])
    monkeypatch.setattr(rtnl.socket, "socket", lambda *a: fake)
    assert [(l["index"], l["name"]) for l in rtnl.dump_links()] == [(1, "lo"), (2, "eth0")]
    assert fake.sent == [rtnl.build_dump_links()] and fake.closed


def test_request_errors_are_netlink_errors(monkeypatch):
    fake = _FakeSocket([_error(-errno.EPERM)])
    monkeypatch.setattr(rtnl.socket, "socket", lambda *a: fake)
    monkeypatch.setattr(rtnl, "index_of", lambda name: 7)
    with pytest.raises(NetlinkError) as caught:
        rtnl.set_link("t0", up=True)
    assert (caught.value.errno, caught.value.op) == (errno.EPERM, "set link t0") and fake.closed

    def refuse(*args):
        raise PermissionError(errno.EACCES, "no netlink for you")

    monkeypatch.setattr(rtnl.socket, "socket", refuse)
    with pytest.raises(NetlinkError) as caught:
        rtnl.dump_addrs()
    assert (caught.value.errno, caught.value.op) == (errno.EACCES, "dump addresses")


def test_delete_link_names_the_link_and_takes_gone_as_done(monkeypatch):
    msg = _decoded(ifinfmsg, rtnl.build_delete_link("kn-web-0"))
    assert (msg["header"]["type"], msg["header"]["flags"]) == (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert (msg["index"], _attrs(msg)) == (0, [("IFLA_IFNAME", "kn-web-0")])  # by name: never a reused index
    for code, raised in ((0, None), (-errno.ENODEV, None), (-errno.EPERM, errno.EPERM)):
        fake = _FakeSocket([_error(code)])
        monkeypatch.setattr(rtnl.socket, "socket", lambda *a: fake)
        if raised is None:
            rtnl.delete_link("kn-web-0")
        else:
            with pytest.raises(NetlinkError) as caught:
                rtnl.delete_link("kn-web-0")
            assert (caught.value.errno, caught.value.op) == (raised, "delete link kn-web-0")
        assert fake.sent == [rtnl.build_delete_link("kn-web-0")] and fake.closed


def test_delete_group_is_one_request_for_the_group_and_an_empty_group_is_done(monkeypatch):
    msg = _decoded(ifinfmsg, rtnl.build_delete_group(0x4B4E1234))
    assert (msg["header"]["type"], msg["header"]["flags"]) == (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert (msg["index"], _attrs(msg)) == (0, [("IFLA_GROUP", 0x4B4E1234)])
    for code, raised in ((0, None), (-errno.ENODEV, None), (-errno.EOPNOTSUPP, errno.EOPNOTSUPP)):
        fake = _FakeSocket([_error(code)])
        monkeypatch.setattr(rtnl.socket, "socket", lambda *a: fake)
        if raised is None:
            rtnl.delete_group(5)
        else:
            with pytest.raises(NetlinkError) as caught:
                rtnl.delete_group(5)
            assert (caught.value.errno, caught.value.op) == (raised, "delete link group 5")


def test_set_link_on_a_missing_link():
    with pytest.raises(NetlinkError) as caught:
        rtnl.set_link("kn-nosuch-0", up=True)
    assert (caught.value.errno, caught.value.op) == (errno.ENODEV, "set link kn-nosuch-0")


def test_create_tap_ioctls_and_their_errors(monkeypatch):
    import fcntl

    calls = []
    monkeypatch.setattr(rtnl, "index_of", lambda name: None)
    monkeypatch.setattr(rtnl.os, "open", lambda path, flags: calls.append(("open", path)) or 99)
    monkeypatch.setattr(rtnl.os, "close", lambda fd: calls.append(("close", fd)))
    monkeypatch.setattr(fcntl, "ioctl", lambda fd, req, arg: calls.append(("ioctl", fd, req, arg)))
    assert rtnl.create_tap("kn-a-0") is True
    assert calls == [("open", "/dev/net/tun"), ("ioctl", 99, rtnl._TUNSETIFF, rtnl.build_ifreq("kn-a-0")),
                     ("ioctl", 99, rtnl._TUNSETPERSIST, 1), ("close", 99)]

    def busy(fd, req, arg):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(fcntl, "ioctl", busy)
    with pytest.raises(NetlinkError) as caught:
        rtnl.create_tap("kn-a-0")
    assert (caught.value.errno, caught.value.op) == (errno.EBUSY, "create tap kn-a-0")
    assert calls[-1] == ("close", 99)  # the fd is closed on failure too


def test_create_tap_leaves_an_existing_link_alone(monkeypatch):
    monkeypatch.setattr(rtnl, "index_of", lambda name: 4)
    monkeypatch.setattr(rtnl.os, "open", lambda *a: pytest.fail("opened /dev/net/tun"))
    assert rtnl.create_tap("kn-a-0") is False
