"""kvmnet.host.netlink, the one netlink interface: which client does what, in how many requests,
what counts as already done, and the one error type whichever library failed. Both clients are
replaced by recorders, so no root and no socket."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError as Pyroute2Error

from kvmnet.host import netlink, netlink_pyroute2, rtnl
from kvmnet.host.netlink import NetlinkError
from kvmnet.observed import Address, Link, Route

ROOT = Path(__file__).resolve().parents[2]
LINKS = {"lo": 1, "virbr0": 3, "kn-web-0": 9}


@pytest.fixture
def sent(monkeypatch):
    """Every pyroute2 request as (op, what, command, fields); links are LINKS."""
    calls = []
    monkeypatch.setattr(rtnl, "index_of", LINKS.get)
    monkeypatch.setattr(netlink_pyroute2, "request", lambda op, what, command, **f: calls.append((op, what, command, f)))
    return calls


def _refuse(monkeypatch, code: int):
    def request(op, what, command, **fields):
        raise NetlinkError(code, op)

    monkeypatch.setattr(netlink_pyroute2, "request", request)


def test_the_hook_path_and_reads_never_import_pyroute2():
    code = ("import sys, kvmnet.hook; from kvmnet.host import rtnl, netlink; rtnl.index_of('lo'); rtnl.read_mtu('lo'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2'))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_add_bridge_creates_then_sets_mtu_then_up(sent, monkeypatch):
    """The MTU is a change after creation: only then does the kernel keep it when ports join."""
    monkeypatch.setattr(rtnl, "read_mtu", lambda name: 1500)
    netlink.add_bridge("virbr0", "52:54:00:00:00:01", 1400, True, 15)
    assert sent == [
        ("add bridge virbr0", "link", "add", {"ifname": "virbr0", "kind": "bridge", "br_stp_state": 1,
                                              "br_forward_delay": 1500, "address": "52:54:00:00:00:01"}),
        ("add bridge virbr0", "link", "set", {"index": 3, "mtu": 1400}),
        ("add bridge virbr0", "link", "set", {"index": 3, "state": "up"}),
    ]
    sent.clear()
    netlink.add_bridge("virbr0", None, 1500, False, 0)  # already 1500: the kernel would skip it
    assert [f for *_, f in sent][1:] == [{"index": 3, "mtu": 1499}, {"index": 3, "mtu": 1500}, {"index": 3, "state": "up"}]


def test_add_tap_is_one_ioctl_and_one_request_through_rtnl(sent, monkeypatch):
    calls = []
    monkeypatch.setattr(rtnl, "create_tap", lambda name, mq=False: calls.append(("create", name) + (("mq",) if mq else ())))
    monkeypatch.setattr(rtnl, "set_link", lambda name, **kw: calls.append(("set", name, kw)))
    netlink.add_tap("kn-web-0", "virbr0", "fe:54:00:00:00:02", 1400, 0)
    assert calls == [("create", "kn-web-0"),
                     ("set", "kn-web-0", {"master": 3, "mac": "fe:54:00:00:00:02", "mtu": 1400, "group": 0, "up": True})]
    assert sent == []
    netlink.add_tap("kn-web-2", "virbr0", None, None, 0, multi_queue=True)
    assert calls[-2] == ("create", "kn-web-2", "mq")
    with pytest.raises(NetlinkError) as caught:
        netlink.add_tap("kn-web-1", "nosuchbr", None, None)
    assert caught.value.errno == errno.ENODEV and "nosuchbr" in caught.value.op


def test_set_link_changes_only_what_is_given(sent):
    netlink.set_link("kn-web-0", master="", up=False)
    assert sent == [("set link kn-web-0", "link", "set", {"index": 9, "master": 0}),
                    ("set link kn-web-0", "link", "set", {"index": 9, "state": "down"})]
    sent.clear()
    netlink.set_link("virbr0", stp=False, forward_delay=2)
    assert sent == [("set link virbr0", "link", "set", {"index": 3, "kind": "bridge", "br_forward_delay": 200, "br_stp_state": 0})]


@pytest.mark.parametrize("name, master", [("kn-gone-0", None), ("kn-web-0", "nosuchbr")])
def test_set_link_on_a_missing_link(sent, name, master):
    with pytest.raises(NetlinkError) as caught:
        netlink.set_link(name, master=master, up=True)
    assert caught.value.errno == errno.ENODEV and caught.value.op.startswith(f"set link {name}")
    assert sent == []


def test_addresses(sent):
    netlink.add_addr("virbr0", "192.168.122.1/24")
    netlink.del_addr("virbr0", "fd00::1/64")
    netlink.del_addr("kn-gone-0", "10.0.0.1/8")  # gone with its link: no request
    assert sent == [
        ("add address 192.168.122.1/24 to virbr0", "addr", "add", {"index": 3, "address": "192.168.122.1", "prefixlen": 24}),
        ("delete address fd00::1/64 from virbr0", "addr", "del", {"index": 3, "address": "fd00::1", "prefixlen": 64}),
    ]


def test_routes(sent):
    netlink.add_route({"family": 4, "dst": "default", "dev": "virbr0", "gateway": "192.168.122.2", "metric": 100})
    netlink.del_route({"family": 6, "dst": "fd01::/64", "dev": "virbr0", "proto": "boot", "scope": 253,
                       "prefsrc": "fd00::1"})
    netlink.del_route({"family": 4, "dst": "10.0.0.0/8", "dev": "kn-gone-0"})
    assert sent == [
        ("add route default via 192.168.122.2 dev virbr0", "route", "add",
         {"dst": "0.0.0.0/0", "family": 2, "table": 254, "oif": 3, "gateway": "192.168.122.2", "priority": 100,
          "proto": 4, "scope": 0}),
        ("delete route fd01::/64 dev virbr0", "route", "del",
         {"dst": "fd01::/64", "family": 10, "table": 254, "oif": 3, "prefsrc": "fd00::1", "proto": 3, "scope": 253}),
    ]


@pytest.mark.parametrize("call, harmless", [
    (lambda: netlink.add_addr("virbr0", "10.0.0.1/24"), errno.EEXIST),
    (lambda: netlink.del_addr("virbr0", "10.0.0.1/24"), errno.EADDRNOTAVAIL),
    (lambda: netlink.add_route({"family": 4, "dst": "10.0.0.0/8", "dev": "virbr0"}), errno.EEXIST),
    (lambda: netlink.del_route({"family": 4, "dst": "10.0.0.0/8", "dev": "virbr0"}), errno.ESRCH),
], ids=["add_addr", "del_addr", "add_route", "del_route"])
def test_already_done_is_success_anything_else_fails(sent, monkeypatch, call, harmless):
    monkeypatch.setattr(rtnl, "dump_links", lambda: [{"name": "kn-web-0", "group": 7}])
    _refuse(monkeypatch, harmless)
    call()
    _refuse(monkeypatch, errno.EPERM)
    with pytest.raises(NetlinkError) as caught:
        call()
    assert caught.value.errno == errno.EPERM and caught.value.op


def test_an_existing_bridge_is_still_set_up(sent, monkeypatch):
    def request(op, what, command, **fields):
        if command == "add":
            raise NetlinkError(errno.EEXIST, op)
        sent.append((op, what, command, fields))

    monkeypatch.setattr(netlink_pyroute2, "request", request)
    netlink.add_bridge("virbr0", None, None, False, 0)
    assert sent == [("add bridge virbr0", "link", "set", {"index": 3, "state": "up"})]


def test_delete_group_only_when_the_group_holds_exactly_ours(sent, monkeypatch):
    dump = [{"name": "kn-web-0", "group": 7}, {"name": "kn-web-1", "group": 7}, {"name": "eth0", "group": 0}]
    monkeypatch.setattr(rtnl, "dump_links", lambda: dump)
    monkeypatch.setattr(rtnl, "delete_group", lambda group: sent.append(("rtnl delete group", group)))
    assert netlink.delete_group(7, ["kn-web-0", "kn-web-1", "virbr0"]) == ["virbr0"]
    assert sent == [("rtnl delete group", 7)]  # one request, through rtnl: no pyroute2
    sent.clear()
    assert netlink.delete_group(7, ["kn-web-0"]) == ["kn-web-0"]  # kn-web-1 is not ours: one by one
    assert sent == []


def test_reads_resolve_indexes_and_filter(monkeypatch):
    monkeypatch.setattr(rtnl, "dump_links", lambda: [
        {"index": 3, "name": "virbr0", "flags": 0x1003, "mtu": 1500, "master": None, "mac": "52:54:00:00:00:01",
         "group": 0, "kind": "bridge", "stp": False, "forward_delay": 2},
        {"index": 9, "name": "kn-web-0", "flags": 0x1002, "mtu": 1500, "master": 3, "mac": "fe:54:00:00:00:02",
         "group": 7, "kind": "tun", "stp": None, "forward_delay": None}])
    plain = {"label": None, "broadcast": None, "peer": None, "flags": 0, "metric": None, "valid": None, "preferred": None}
    monkeypatch.setattr(rtnl, "dump_addrs", lambda: [
        {"index": 3, "family": 4, "address": "192.168.122.1", "prefixlen": 24, "scope": 0, **plain,
         "label": "virbr0", "flags": 0x80},  # the link's own name is no label; "permanent" is the kernel's
        {"index": 3, "family": 4, "address": "192.168.122.9", "prefixlen": 24, "scope": 0, **plain,
         "label": "virbr0:1", "broadcast": "192.168.122.255", "flags": 0x201, "valid": 60, "preferred": 30},
        {"index": 3, "family": 6, "address": "fe80::1", "prefixlen": 64, "scope": 253, **plain},
        {"index": 3, "family": 6, "address": "2001:db8::99", "prefixlen": 64, "scope": 0, **plain, "flags": 0x1}])
    monkeypatch.setattr(rtnl, "dump_routes", lambda family: [
        {"dst": "192.168.122.0", "dst_len": 24, "table": 254, "proto": 2, "scope": 253, "type": 1, "oif": 3,
         "gateway": None, "metric": None, "prefsrc": "192.168.122.1"},
        {"dst": "127.0.0.0", "dst_len": 8, "table": 255, "proto": 2, "scope": 254, "type": 2, "oif": 1,
         "gateway": None, "metric": None, "prefsrc": None},
        {"dst": "203.0.113.0", "dst_len": 24, "table": 100, "proto": 4, "scope": 0, "type": 1, "oif": 3,
         "gateway": "192.168.122.253", "metric": None, "prefsrc": None}] if family == 2 else [])
    links = netlink.read_links()
    assert links["kn-web-0"] == Link(name="kn-web-0", index=9, kind="tun", mtu=1500, up=False, master="virbr0",
                                     mac="fe:54:00:00:00:02", group=7)
    assert links["virbr0"].up and links["virbr0"].stp is False and links["virbr0"].forward_delay == 2
    addrs = netlink.read_addrs(links)  # in the kernel's order; privacy and link-local IPv6 left out
    assert [a.cidr for a in addrs["virbr0"]] == ["192.168.122.1/24", "192.168.122.9/24"]
    assert addrs["virbr0"][0] == Address("192.168.122.1/24")
    second = addrs["virbr0"][1]
    assert (second.label, second.broadcast, second.flags, second.valid_lft, second.preferred_lft) == (
        "virbr0:1", "192.168.122.255", 0x200, 60, 30) and second.read_at > 0
    assert netlink.read_routes(links) == (  # every table's unicast routes
        Route(family=4, dst="192.168.122.0/24", dev="virbr0", proto="kernel", scope=253, prefsrc="192.168.122.1"),
        Route(family=4, dst="203.0.113.0/24", dev="virbr0", gateway="192.168.122.253", table=100))


# -- the pyroute2 client -------------------------------------------------------------------------

class _FakeIPRoute:
    def __init__(self, exc: Exception):
        self.exc = exc

    def link(self, command, **fields):
        raise self.exc


@pytest.mark.parametrize("exc, code", [(Pyroute2Error(errno.EEXIST), errno.EEXIST),
                                       (PermissionError(errno.EPERM, "Operation not permitted"), errno.EPERM)])
def test_pyroute2_errors_become_the_one_error_type(monkeypatch, exc, code):
    monkeypatch.setattr(netlink_pyroute2, "_ipr", _FakeIPRoute(exc))
    with pytest.raises(NetlinkError) as caught:
        netlink_pyroute2.request("add bridge br0", "link", "add", ifname="br0", kind="bridge")
    assert (caught.value.errno, caught.value.op, str(caught.value)) == (code, "add bridge br0",
                                                                        f"add bridge br0: {os.strerror(code)}")


def test_pyroute2_programming_errors_are_not_hidden(monkeypatch):
    monkeypatch.setattr(netlink_pyroute2, "_ipr", _FakeIPRoute(TypeError("bad field")))
    with pytest.raises(TypeError):
        netlink_pyroute2.request("add bridge br0", "link", "add")
