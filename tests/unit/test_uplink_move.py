"""Bridge mode against an in-memory host: the uplink's addresses (order and attributes) and its
routes in every table move to the bridge and back exactly, and records written by an older
kvmnet (IPv4 CIDR strings, main-table routes) still plan and destroy (issue 12 item 8)."""

from __future__ import annotations

from pathlib import Path

from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import record as records

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "topologies" / "bridge.toml"
LEASE = {"broadcast": "10.9.0.255", "valid_lft": 3600, "preferred_lft": 1800, "read_at": 100.0}


def uplink() -> FakeHost:
    host = FakeHost().with_nic("eth0", "52:54:00:aa:bb:cc")
    host._addr_add("eth0", "10.9.0.50/24", **LEASE)
    host._addr_add("eth0", "10.9.0.51/24", label="eth0:1")
    host._addr_add("eth0", "2001:db8:9::50/64", flags=0x200)
    for route in ({"family": 4, "dst": "default", "dev": "eth0", "gateway": "10.9.0.1", "metric": 100, "proto": "dhcp"},
                  {"family": 4, "dst": "203.0.113.0/24", "dev": "eth0", "gateway": "10.9.0.253", "table": 100},
                  {"family": 6, "dst": "2001:db8:ff::/48", "dev": "eth0", "metric": 512}):
        host._route_add(route)
    return host


def test_addresses_and_routes_of_every_table_move_and_come_back_exactly(tmp_path):
    host = uplink()
    before = host.state()
    engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host)
    on_bridge = host.addrs(None)["br0"]
    assert [(a.cidr, a.label, a.flags) for a in on_bridge] == [
        ("10.9.0.50/24", None, 0), ("10.9.0.51/24", "br0:1", 0), ("2001:db8:9::50/64", None, 0x200)]
    assert (on_bridge[0].broadcast, on_bridge[0].valid_lft, on_bridge[0].preferred_lft) == ("10.9.0.255", 3600, 1800)
    assert "eth0" not in host.addrs(None)
    assert {(r.dst, r.table) for r in host.routes_ if r.dev == "br0" and r.proto != "kernel"} == {
        ("default", 254), ("203.0.113.0/24", 100), ("2001:db8:ff::/48", 254)}
    engine.destroy("bridge", str(tmp_path), host=host)
    assert host.state() == before  # addr_attrs: the same attributes, in the same order


def test_a_record_of_an_older_kvmnet_still_plans_and_destroys(tmp_path):
    host = FakeHost().with_nic("eth0", "52:54:00:aa:bb:cc", ["10.9.0.2/24"], gateway="10.9.0.1")
    before = host.state()
    topo = config.load(str(BRIDGE))
    engine.apply(topo, str(tmp_path), host=host)
    rec = records.load(str(tmp_path), "bridge")
    rec.uplinks["lan"] = {"mac": "52:54:00:aa:bb:cc", "addrs": ["10.9.0.2/24"],  # as kvmnet 0.x wrote it
                          "routes": [{"family": 4, "dst": "default", "dev": "eth0", "gateway": "10.9.0.1",
                                      "metric": None, "proto": "dhcp", "scope": 0, "prefsrc": None}]}
    records.save(str(tmp_path), rec)
    assert engine.Context(topo, str(tmp_path), host=host).actions == []
    engine.destroy("bridge", str(tmp_path), host=host)
    assert host.state() == before


def test_the_uplink_has_no_ipv6_of_its_own_while_it_is_a_port(tmp_path):
    # its kernel-made routes (RA prefix and default routes) would take the bridge's traffic
    host = uplink()
    engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host)
    assert host.sysctls["net/ipv6/conf/eth0/disable_ipv6"] == "1"
    assert engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host).actions == []
    engine.destroy("bridge", str(tmp_path), host=host)
    assert host.sysctls["net/ipv6/conf/eth0/disable_ipv6"] == "0"  # on again: the kernel solicits RAs


def _ra_sysctls(host, dev):
    return host.sysctls[f"net/ipv6/conf/{dev}/accept_ra"], host.sysctls[f"net/ipv6/conf/{dev}/autoconf"]


def test_the_bridge_learns_from_router_advertisements_as_its_uplink_did(tmp_path):
    host = uplink()
    host.sysctls["net/ipv6/conf/eth0/autoconf"] = "0"  # RAs for routes only
    host.sysctls["net/ipv6/conf/all/forwarding"] = "1"  # another topology routes IPv6
    before = host.state()
    engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host)
    # accept_ra=1 would ignore RAs while forwarding: 2 accepts them (autoconf as the uplink's)
    assert _ra_sysctls(host, "br0") == ("2", "0") and _ra_sysctls(host, "eth0") == ("1", "0")
    assert engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host).actions == []
    engine.destroy("bridge", str(tmp_path), host=host)
    assert host.state() == before


def test_a_bridge_mode_lan_beside_a_network_that_routes_ipv6(tmp_path):
    """Forwarding planned by the same file: the bridge gets accept_ra=2, not the port."""
    path = tmp_path / "mixed.toml"
    path.write_text(BRIDGE.read_text() + '[networks.v6]\nmode = "routed"\nbridge = "kvr6"\n'
                    'subnet = "10.77.0.0/24"\nsubnet6 = "fd00:77::/64"\n')
    host = uplink()
    host._route_add({"family": 6, "dst": "2001:db8:9::/64", "dev": "eth0", "proto": "ra"})  # RA-configured
    before = host.state()
    engine.apply(config.load(str(path)), str(tmp_path), host=host)
    assert host.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert _ra_sysctls(host, "br0") == ("2", "1") and _ra_sysctls(host, "eth0") == ("1", "1")
    assert engine.apply(config.load(str(path)), str(tmp_path), host=host).actions == []
    engine.destroy("mixed", str(tmp_path), host=host)
    assert host.state() == before


def test_an_uplink_without_ipv6_makes_a_bridge_without_ipv6(tmp_path):
    host = uplink()
    host.sysctls["net/ipv6/conf/eth0/disable_ipv6"] = "1"
    before = host.state()
    engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host)
    assert host.sysctls["net/ipv6/conf/br0/disable_ipv6"] == "1"
    assert engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host).actions == []
    engine.destroy("bridge", str(tmp_path), host=host)
    assert host.state() == before
    # with IPv6 on the uplink, kvmnet turns it off on the port: the bridge keeps IPv6 on re-apply
    host.sysctls["net/ipv6/conf/eth0/disable_ipv6"] = "0"
    engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host)
    assert engine.apply(config.load(str(BRIDGE)), str(tmp_path), host=host).actions == []
    assert (host.sysctls["net/ipv6/conf/br0/disable_ipv6"], host.sysctls["net/ipv6/conf/eth0/disable_ipv6"]) == ("0", "1")
