"""IPv6 on the host side, against the in-memory host: the bridge's IPv6 settings and gateway6,
IPv6 forwarding owned and handed over like ip_forward, and an uplink that relies on router
advertisements kept working (accept_ra=2) while forwarding is on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.errors import HostError

ROOT = Path(__file__).resolve().parents[2]
DUAL = ROOT / "topologies" / "dual-stack.toml"
ISOLATED6 = """\
[networks.lab]
mode = "isolated"
bridge = "kv6iso"
subnet6 = "fd00:77::/64"
"""


def ra_host() -> FakeHost:
    """An uplink configured by router advertisements (its default route is proto ra)."""
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    host._route_add({"family": 6, "dst": "2001:db8:1::/64", "dev": "eth0", "proto": "ra"})
    return host


def second(tmp_path: Path) -> Path:
    """The dual-stack topology under another name, bridges and prefixes."""
    text = DUAL.read_text().replace("kvmds", "kvmdt").replace("beef:", "bee0:").replace("192.168.124", "192.168.125")
    text = text.replace("10.78.0", "10.79.0").replace("8081", "8082").replace(":35:", ":36:").replace("guests.web", "guests.web2").replace("guests.db", "guests.db2").replace("guest = \"web\"", "guest = \"web2\"")
    path = tmp_path / "other.toml"
    path.write_text(text)
    return path


def test_bridge_gets_gateway6_and_router_settings(tmp_path):
    host = ra_host()
    engine.apply(config.load(str(DUAL)), str(tmp_path), host=host)
    for br, gw in (("kvmds0", "fd00:dead:beef:1::1/64"), ("kvmds1", "fd00:dead:beef:2::1/64")):
        assert {k.split("/")[-1]: v for k, v in host.sysctls.items() if f"/conf/{br}/" in k and "ipv6" in k} == \
            {"disable_ipv6": "0", "accept_ra": "0", "autoconf": "0", "accept_dad": "0"}
        assert gw in host.addrs_[br]
        assert host.addr_attrs[br][gw] == {"flags": 0x02}  # nodad: usable while the bridge has no carrier


def test_forwarding6_and_accept_ra_2_then_destroy_restores(tmp_path):
    host = ra_host()
    before = host.state()
    engine.apply(config.load(str(DUAL)), str(tmp_path), host=host)
    assert host.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert host.sysctls["net/ipv6/conf/eth0/accept_ra"] == "2"
    assert engine.apply(config.load(str(DUAL)), str(tmp_path), host=host).actions == []
    engine.destroy("dual_stack", str(tmp_path), host=host)
    assert host.state() == before


def test_forwarding6_and_accept_ra_handed_over_to_the_topology_still_using_them(tmp_path):
    host = ra_host()
    before = host.state()
    other = config.load(str(second(tmp_path)))
    engine.apply(config.load(str(DUAL)), str(tmp_path / "s"), host=host)
    engine.apply(other, str(tmp_path / "s"), host=host)
    engine.destroy("dual_stack", str(tmp_path / "s"), host=host)
    assert (host.sysctls["net/ipv6/conf/all/forwarding"], host.sysctls["net/ipv6/conf/eth0/accept_ra"]) == ("1", "2")
    engine.destroy(other.name, str(tmp_path / "s"), host=host)
    assert host.state() == before


def test_isolated_ipv6_turns_on_no_forwarding(tmp_path):
    host = ra_host()
    path = tmp_path / "iso6.toml"
    path.write_text(ISOLATED6)
    engine.apply(config.load(str(path)), str(tmp_path / "s"), host=host)
    assert (host.sysctls["net/ipv6/conf/all/forwarding"], host.sysctls["net/ipv6/conf/eth0/accept_ra"]) == ("0", "1")
    assert "fd00:77::1/64" in host.addrs_["kv6iso"]
    assert host.dnsmasqs  # router advertisements need dnsmasq even without DHCP


def test_static_dhcpv6_lease_and_aaaa_record_in_the_reloadable_files():
    from kvmnet.render import dnsmasq
    topo = config.load(str(DUAL))
    net = topo.network("default")
    assert dnsmasq.render_dhcp_hosts(topo, net) == "52:54:00:12:35:01,192.168.124.10,[fd00:dead:beef:1::10],web\n"
    assert dnsmasq.render_hosts(topo, net) == ("192.168.124.10 web web.ds.lan\n"
                                               "fd00:dead:beef:1::10 web web.ds.lan\n")


def test_a_failed_apply_that_drops_ipv6_puts_forwarding6_back(tmp_path):
    """Dropping IPv6 reverts net.ipv6.conf.all.forwarding; when the apply then fails, the
    rollback must set it again (its undo reads the value the removal replaces)."""
    host = FakeHost()
    engine.apply(config.load(str(DUAL)), str(tmp_path), host=host)
    before = host.state()
    v4_only = re.sub(r"(?m)^\s*(subnet6|gateway6|nat6|ip6)\s*=.*\n", "", DUAL.read_text())
    v4_only = re.sub(r"\[networks\.\w+\.dhcp6\]\n(?:(?:start|end)\s*=.*\n)+", "", v4_only)
    path = tmp_path / "dual-stack.toml"
    path.write_text(v4_only)
    host.fail(op="firewall.apply")  # after the sysctl steps
    with pytest.raises(HostError):
        engine.apply(config.load(str(path)), str(tmp_path), host=host, replace=True)
    assert host.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert host.state() == before
