"""Host conflicts found before any change (with their file:line messages), and observe()
against an in-memory host."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import observe as observing
from kvmnet.errors import InputError
from kvmnet.observed import Link, Route

ROOT = Path(__file__).resolve().parents[2]
NAT, BRIDGE = "topologies/nat.toml", "topologies/bridge.toml"
DUAL = "topologies/dual-stack.toml"


def nic() -> FakeHost:
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")


def foreign_bridge():
    host = nic()
    host._add_link("virbr0", "bridge")
    return host


def ipv6_route(dst: str) -> FakeHost:
    host = nic()
    host._route_add({"family": 6, "dst": dst, "dev": "eth0", "proto": "static"})
    return host


def uplink_taken():
    host = nic()
    host._add_link("docker0", "bridge")
    host.links_["eth0"]["master"] = "docker0"
    return host


def uplink_tap():
    host = FakeHost()
    host._add_link("eth0", "tun")
    return host


def port_bound():
    host = nic()
    host.listeners[("tcp", 8080)] = ["1234 (python3)"]
    return host


def foreign_tap():
    host = nic()
    host._add_link("kn-nat-web-0", "tun")
    return host


CONFLICTS = {
    "foreign bridge": (foreign_bridge, NAT, "topologies/nat.toml:5: networks.default.bridge: virbr0 already exists "
                       "on this host (bridge) and kvmnet did not create it"),
    "overlapping route": (lambda: nic().with_nic("eth1", "52:54:00:00:00:02", ["192.168.0.5/16"]), NAT,
                          "topologies/nat.toml:6: networks.default.subnet: 192.168.122.0/24 overlaps the host's "
                          "route 192.168.0.0/16 dev eth1"),
    "overlapping IPv6 route": (lambda: ipv6_route("fd00:dead:beef:1:8000::/65"), DUAL,
                               "topologies/dual-stack.toml:12: networks.default.subnet6: fd00:dead:beef:1::/64 "
                               "overlaps the host's route fd00:dead:beef:1:8000::/65 dev eth0"),
    "missing uplink": (FakeHost, BRIDGE, "topologies/bridge.toml:6: networks.lan.uplink: uplink eth0 does not exist "
                       "on this host"),
    "uplink in another bridge": (uplink_taken, BRIDGE, "topologies/bridge.toml:6: networks.lan.uplink: uplink eth0 "
                                 "is already a port of docker0"),
    "uplink is a tap": (uplink_tap, BRIDGE, "topologies/bridge.toml:6: networks.lan.uplink: uplink eth0 is a tun "
                        "device, not a NIC"),
    "bound port": (port_bound, NAT, "topologies/nat.toml:18: networks.default.forwards[0].host_port: tcp port 8080 "
                   "is already in use on this host by 1234 (python3)"),
    "foreign tap": (foreign_tap, NAT, "topologies/nat.toml:23: guests.web.nics[0].tap: kn-nat-web-0 already exists on "
                    "this host and kvmnet did not create it"),
}


@pytest.mark.parametrize("case", sorted(CONFLICTS))
def test_a_conflict_is_an_input_error_and_changes_nothing(case, tmp_path, monkeypatch):
    make, path, message = CONFLICTS[case]
    monkeypatch.chdir(ROOT)
    host = make()
    before = host.state()
    with pytest.raises(InputError) as exc:
        engine.apply(config.load(path), str(tmp_path), host=host)
    assert str(exc.value) == message
    assert host.ran == [] and host.state() == before and not (tmp_path / "nat").exists()


def test_what_kvmnet_made_itself_is_no_conflict(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    host = nic()
    engine.apply(config.load(NAT), str(tmp_path), host=host)
    engine.Context(config.load(NAT), str(tmp_path), host=host)  # no InputError: the bridge and taps are ours


def test_observe_reads_only_what_the_topology_needs(tmp_path):
    host = nic()
    host.sysctls["net/ipv4/ip_forward"] = "1"
    host.listeners[("tcp", 8080)] = ["99 (nginx)"]
    topo = config.load(str(ROOT / NAT))
    seen = observing.observe(topo, str(tmp_path / "nat"), "nftables", host)
    assert seen.links["eth0"] == Link(name="eth0", index=2, kind="", mtu=1500, up=True, master=None,
                                      mac="52:54:00:00:00:01")
    assert seen.addrs_of("eth0") == frozenset({"192.0.2.10/24"}) and set(seen.addrs) == {"eth0"}
    assert seen.routes == (Route(4, "192.0.2.0/24", "eth0", None, None, "kernel", 253, "192.0.2.10"),
                           Route(4, "default", "eth0", "192.0.2.1", None, "dhcp"))
    assert seen.sysctls == {"net/ipv4/conf/virbr0/route_localnet": None, "net/ipv4/ip_forward": "1",
                            "net/ipv6/conf/virbr0/disable_ipv6": None, "net/bridge/bridge-nf-call-ip6tables": None}
    assert seen.firewall == {"exists": False}
    assert seen.processes == {"dnsmasq:default": {"pid": None, "conf_text": None, "hosts": None, "dhcp_hosts": None,
                                                  "bridge": None, "group": "nogroup"}}
    assert seen.host_forward == {"policy": "ACCEPT", "rules": []}
    assert seen.listeners == {"tcp/8080": "99 (nginx)"}
    assert (seen.dnsmasq_user, seen.dnsmasq_exe) == ("nobody", "/usr/sbin/dnsmasq")


def test_observe_of_a_topology_without_bridges_asks_for_little(tmp_path):
    seen = observing.observe(config.load(str(ROOT / "topologies" / "user.toml")), str(tmp_path), host=nic())
    assert (seen.sysctls, seen.firewall, seen.processes, seen.host_forward, seen.listeners) == ({}, {}, {}, {}, {})


def test_observe_after_apply_sees_kvmnets_table_and_dnsmasq(tmp_path):
    host = nic()
    topo = config.load(str(ROOT / NAT))
    engine.apply(topo, str(tmp_path), host=host)
    seen = observing.observe(topo, str(tmp_path / "nat"), "nftables", host)
    assert seen.firewall["exists"] and seen.firewall["elements"] == {"fwd_any": 1}
    assert sum(seen.firewall["rules"].values()) == 19 and len(seen.firewall["comments"]) == 1
    assert seen.processes["dnsmasq:default"]["pid"] == 1001


@pytest.mark.parametrize("bound, found", [(("tcp", 9005), {"tcp/9005": "7 (httpd)"}), (("udp", 9005), {}),
                                          (("tcp", 9011), {}), (("udp", 5353), {"udp/5353": "7 (httpd)"})])
def test_observe_finds_listeners_inside_forwarded_ranges_and_single_ports(tmp_path, bound, found):
    path = tmp_path / "ranges.toml"
    path.write_text((ROOT / NAT).read_text() + '\n[[networks.default.forwards]]\nhost_port = "9000-9010"\n'
                    'guest = "192.168.122.9"\n\n[[networks.default.forwards]]\nproto = "udp"\nhost_port = 5353\n'
                    'guest = "192.168.122.9"\n')
    host = nic()
    host.listeners[bound] = ["7 (httpd)"]
    assert observing.observe(config.load(str(path)), str(tmp_path / "nat"), "nftables", host).listeners == found
