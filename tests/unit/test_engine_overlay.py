"""A multi-host topology on an in-memory host: which host this is, its part of the topology
(gateway host: everything; other hosts: a bridge), the VXLAN port and flooding list, drift
repair, destroy, and the record's closed schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import overlay
from kvmnet.engine import record as records
from kvmnet.errors import InputError

THREE = Path(__file__).resolve().parents[1] / "data" / "multihost" / "three.toml"


def host_at(addr: str, mtu: int = 1500) -> FakeHost:
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", [f"{addr}/24"])
    host.links_["eth0"]["mtu"] = mtu
    return host


def topo(name: str | None = None, path: Path = THREE):
    return overlay.with_host(config.load(str(path)), name)


def test_the_host_is_the_one_whose_underlay_address_is_local(tmp_path):
    ctx = engine.Context(topo(), str(tmp_path), host=host_at("10.200.0.2"))
    assert ctx.topo.overlay.me == "h2"
    net = ctx.topo.network("lab")
    assert (net.mode, net.gateway, net.dhcp, net.forwards, net.mtu, net.stp) == ("isolated", None, None, (), 1450, False)


def test_no_local_underlay_is_an_input_error_naming_the_hosts(tmp_path):
    with pytest.raises(InputError) as exc:
        engine.Context(topo(), str(tmp_path), host=host_at("192.0.2.9"))
    assert str(exc.value) == (f"{THREE}: none of the [hosts] underlay addresses (h1 10.200.0.1, h2 10.200.0.2, "
                              "h3 10.200.0.3) is an address of this host: say --host NAME")


def test_host_option_must_name_a_host_whose_underlay_is_local(tmp_path):
    with pytest.raises(InputError) as exc:
        overlay.with_host(config.load(str(THREE)), "h9")
    assert str(exc.value) == f"{THREE}: --host h9: not one of the file's hosts (h1, h2, h3)"
    with pytest.raises(InputError) as exc:
        engine.Context(topo("h1"), str(tmp_path), host=host_at("10.200.0.2"))
    assert str(exc.value) == f"{THREE}:7: hosts.h1.underlay: 10.200.0.1 is not an address of this host (--host h1)"


def test_gateway_host_gets_everything_and_floods_to_both_peers(tmp_path):
    host = host_at("10.200.0.1", mtu=9000)
    engine.apply(topo(), str(tmp_path), host=host)
    assert host.vxlans["kvx4242"] == {"vni": 4242, "local": "10.200.0.1", "port": 4789, "learning": False,
                                      "port_learning": True, "fdb": {"10.200.0.2", "10.200.0.3"}}
    assert host.links_["kvx4242"]["master"] == "kvb-lab" and host.links_["kvx4242"]["mtu"] == 8950
    assert host.links_["kvb-lab"]["mtu"] == 8950
    assert "10.95.0.1/24" in host.addrs_["kvb-lab"]
    conf = next(iter(host.dnsmasqs.values()))
    assert "dhcp-option=option:mtu,8950" in conf["conf_text"]
    assert "10.95.0.10" in conf["dhcp_hosts"]  # the guest on h3 gets its static lease from h1
    assert not [n for n, link in host.links_.items() if link["kind"] == "tun"]  # no guest runs on h1


def test_other_host_gets_a_bridge_vxlan_and_its_own_guests_tap_only(tmp_path):
    host = host_at("10.200.0.3")
    engine.apply(topo(), str(tmp_path), host=host)
    assert host.vxlans["kvx4242"]["fdb"] == {"10.200.0.1", "10.200.0.2"}
    assert not host.addrs_.get("kvb-lab") and not host.dnsmasqs
    taps = sorted(n for n, link in host.links_.items() if link["kind"] == "tun")
    assert len(taps) == 1 and host.links_[taps[0]]["master"] == "kvb-lab"  # web runs here, db on h2
    assert engine.apply(topo(), str(tmp_path), host=host).actions == []


def test_vxlan_and_flooding_drift_is_repaired_and_destroy_leaves_nothing(tmp_path):
    host = host_at("10.200.0.2")
    before = host.state()
    engine.apply(topo(), str(tmp_path), host=host)
    host.vxlans["kvx4242"]["fdb"].discard("10.200.0.3")
    host.vxlans["kvx4242"]["port"] = 8472
    ctx = engine.Context(topo(), str(tmp_path), host=host)
    assert [a.do.describe() for a in ctx.actions if "kvx" in a.key] == [
        "re-create VXLAN kvx4242 (VNI 4242, local 10.200.0.2, port 4789, mtu 1450) on bridge kvb-lab",
        "flood kvx4242's broadcast and unknown frames to peer 10.200.0.1 too",
        "flood kvx4242's broadcast and unknown frames to peer 10.200.0.3 too"]
    engine.apply(topo(), str(tmp_path), host=host)
    assert host.vxlans["kvx4242"]["fdb"] == {"10.200.0.1", "10.200.0.3"} and host.vxlans["kvx4242"]["port"] == 4789
    engine.destroy("multihost", str(tmp_path), host=host)
    assert host.state() == before


def test_a_peer_removed_from_the_file_loses_its_flooding_entry(tmp_path):
    host = host_at("10.200.0.2")
    engine.apply(topo(), str(tmp_path), host=host)
    text = THREE.read_text().replace('# port = 4789; hosts = ["h1", "h2", "h3"] (default: all)', 'hosts = ["h1", "h2"]')
    text = text.replace('host = "h3"', 'host = "h2"')
    smaller = config.load_text(text, str(THREE))
    engine.apply(smaller, str(tmp_path), host=host)
    assert host.vxlans["kvx4242"]["fdb"] == {"10.200.0.1"}


def test_the_record_with_vxlan_steps_passes_its_schema(tmp_path):
    engine.apply(topo(), str(tmp_path), host=host_at("10.200.0.1"))
    rec = records.load(str(tmp_path), "multihost")  # loading checks the closed schema
    assert {k for k, _ in rec.entries} >= {"link:kvx4242", "fdb:kvx4242:10.200.0.2", "fdb:kvx4242:10.200.0.3"}


def _evpn(text: str | None = None):
    text = (text or THREE.read_text()).replace('control = "static"', 'control = "evpn"')
    return config.load_text(text, str(THREE))


def test_evpn_runs_kvmnets_own_frr_with_every_peer_and_no_static_flooding(tmp_path):
    host = host_at("10.200.0.2")
    before = host.state()
    engine.apply(_evpn(), str(tmp_path), host=host)
    assert host.frrs == {f"{tmp_path}/multihost/frr": {"pid": 5002, "host": "h2", "listen": "10.200.0.2",
                                                      "peers": ["10.200.0.1", "10.200.0.3"]}}
    assert host.vxlans["kvx4242"]["fdb"] == set() and host.vxlans["kvx4242"]["port_learning"] is False
    assert engine.apply(_evpn(), str(tmp_path), host=host).actions == []
    records.load(str(tmp_path), "multihost")  # frr.start/stop pass the closed schema
    engine.destroy("multihost", str(tmp_path), host=host)
    assert host.state() == before


def test_a_fourth_host_restarts_frr_with_the_new_peer(tmp_path):
    host = host_at("10.200.0.2")
    engine.apply(_evpn(), str(tmp_path), host=host)
    text = THREE.read_text().replace('[networks.lab]', '[hosts.h4]\nunderlay = "10.200.0.4"\n\n[networks.lab]')
    result = engine.apply(_evpn(text), str(tmp_path), host=host)
    assert [a.do.describe() for a in result.actions] == [
        "restart kvmnet's FRR (zebra, bgpd: EVPN with 10.200.0.1, 10.200.0.3, 10.200.0.4)"]


def test_a_record_cannot_carry_frr_text_or_a_foreign_dir(tmp_path):
    from kvmnet.engine.stepschema import SchemaError, Where, check_step
    where = Where("multihost", f"{tmp_path}/multihost")
    check_step({"op": "frr.stop", "args": {"dir": f"{tmp_path}/multihost/frr"}}, where)
    with pytest.raises(SchemaError, match="is not .*/multihost/frr"):
        check_step({"op": "frr.stop", "args": {"dir": "/etc/frr"}}, where)
    with pytest.raises(SchemaError, match="unknown argument"):
        check_step({"op": "frr.start", "args": {"dir": f"{tmp_path}/multihost/frr", "host": "h1", "listen": "10.0.0.1",
                                                "peers": [], "bgpd_conf": "log file /etc/shadow"}}, where)


def test_a_foreign_vxlan_of_the_same_vni_and_evpn_without_frr_are_refused_before_any_change(tmp_path):
    host = host_at("10.200.0.2")
    host._add_link("kvx4242", "vxlan")
    host.frr_installed = False
    before = host.state()
    with pytest.raises(InputError) as exc:
        engine.apply(_evpn(), str(tmp_path), host=host)
    assert str(exc.value).splitlines() == [
        f"{THREE}:22: networks.lab.vxlan.vni: kvx4242 already exists on this host (vxlan) and kvmnet did not create it",
        f"{THREE}:23: networks.lab.vxlan.control: evpn needs FRR's zebra and bgpd (/usr/lib/frr): install Debian's `frr` package"]
    assert host.state() == before and host.ran == []


def test_a_dead_frr_is_drift_that_apply_restarts(tmp_path):
    host = host_at("10.200.0.2")
    engine.apply(_evpn(), str(tmp_path), host=host)
    host.frrs.clear()  # both daemons killed
    ctx = engine.Context(_evpn(), str(tmp_path), host=host)
    assert [(a.key, a.do.describe()) for a in ctx.actions] == [
        ("frr:multihost", "start kvmnet's FRR (zebra, bgpd: EVPN with 10.200.0.1, 10.200.0.3)")]
    engine.apply(_evpn(), str(tmp_path), host=host)
    assert host.frrs and [k for k, _ in records.load(str(tmp_path), "multihost").entries].count("frr:multihost") == 1


def test_a_stretched_mtu_that_does_not_fit_the_underlay_is_refused(tmp_path):
    path = tmp_path / "mtu.toml"
    path.write_text(THREE.read_text().replace('subnet = "10.95.0.0/24"', 'subnet = "10.95.0.0/24"\nmtu = 1500'))
    with pytest.raises(InputError) as exc:
        engine.Context(config.load(str(path)), str(tmp_path), host=host_at("10.200.0.2"))
    assert str(exc.value) == (f"{path}:17: networks.lab.mtu: 1500 does not fit this host's underlay "
                              "(eth0 mtu 1500 - 50 for VXLAN = 1450): leave mtu out or lower it")
    ok = engine.Context(config.load(str(path)), str(tmp_path), host=host_at("10.200.0.2", mtu=9000))
    assert ok.topo.network("lab").mtu == 1500


def test_ipv6_of_a_stretched_network_lives_on_its_gateway_host_only(tmp_path):
    text = THREE.read_text().replace('subnet = "10.95.0.0/24"', 'subnet = "10.95.0.0/24"\nsubnet6 = "fd00:95::/64"')
    gateway, other = host_at("10.200.0.1"), host_at("10.200.0.2")
    engine.apply(config.load_text(text, str(THREE)), str(tmp_path / "g"), host=gateway)
    engine.apply(config.load_text(text, str(THREE)), str(tmp_path / "o"), host=other)
    assert "fd00:95::1/64" in gateway.addrs_["kvb-lab"]
    assert not other.addrs_.get("kvb-lab")
    assert other.vxlans["kvx4242"]["fdb"] == {"10.200.0.1", "10.200.0.3"}


def test_a_gateway_another_host_still_answers_for_is_refused_until_that_host_gives_it_up(tmp_path):
    """gateway_host moved from h1 to h2: h2 (its bridge up, no gateway address yet) probes the
    segment first; while h1 still answers ARP for 10.95.0.1, h2 changes nothing and says why."""
    moved = tmp_path / "multihost.toml"
    moved.write_text(THREE.read_text())
    host, state = host_at("10.200.0.2"), str(tmp_path / "state")
    engine.apply(topo(path=moved), state, host=host)  # h2 as a member
    assert host.probed == []  # (a bridge without a gateway: nothing to probe for)
    moved.write_text(THREE.read_text().replace('gateway_host = "h1"', 'gateway_host = "h2"'))
    host.held_gateways[("kvb-lab", "10.95.0.1")] = "52:54:00:aa:bb:01"  # h1 has not applied yet
    before = host.state()
    with pytest.raises(InputError) as exc:
        engine.apply(topo(path=moved), state, host=host)
    assert str(exc.value) == (
        f"{moved}:17: networks.lab.gateway_host: 10.95.0.1 is still answered on the stretched network by "
        "52:54:00:aa:bb:01: the host that was its gateway_host keeps the gateway (and its dnsmasq) until the file "
        "is applied there; apply it on that host first, then here (or a guest uses that address)")
    assert host.state() == before and host.probed == [("kvb-lab", "10.95.0.1")]
    del host.held_gateways[("kvb-lab", "10.95.0.1")]  # h1 applied the moved file: it gave the gateway up
    engine.apply(topo(path=moved), state, host=host)
    assert "10.95.0.1/24" in host.addrs_["kvb-lab"] and host.dnsmasqs
    probes = len(host.probed)
    assert engine.apply(topo(path=moved), state, host=host).actions == []
    assert len(host.probed) == probes  # holding the address: no probe, no wait


def test_a_one_host_topology_never_probes(tmp_path, topo_dir):
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    for name in ("nat.toml", "routed.toml"):
        engine.apply(config.load(str(topo_dir / name)), str(tmp_path), host=host)
    host.addrs_["virbr0"] = set()  # the gateway address gone: repaired, and still no probe (no stretched network)
    engine.apply(config.load(str(topo_dir / "nat.toml")), str(tmp_path), host=host)
    assert "192.168.122.1/24" in host.addrs_["virbr0"] and host.probed == []
