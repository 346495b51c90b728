"""destroy against an in-memory host: newest first, the hand-over of shared facts, tap groups,
--force, interrupted runs, and records that are corrupt or not kvmnet's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost, uplinked

from kvmnet import config, engine, naming
from kvmnet.engine import record as records
from kvmnet.errors import HostError, InputError

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED = ROOT / "topologies" / "nat.toml", ROOT / "topologies" / "routed.toml"
FORWARD = "net/ipv4/ip_forward"


def applied(*paths, host=None, root):
    host = host or FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    before = host.state()
    for path in paths:
        engine.apply(config.load(str(path)), str(root), host=host)
    host.ran.clear()
    return host, before


def test_destroy_runs_the_undo_newest_first_and_leaves_the_host_as_before(tmp_path):
    host, before = applied(NAT, root=tmp_path)
    result = engine.destroy("nat", str(tmp_path), host=host)
    assert [s.describe() for s in host.ran] == [
        "stop dnsmasq for default", "remove kvmnet's firewall rules (nftables: table inet kvmnet_nat)",
        "set sysctl net.ipv4.ip_forward = 0", f"delete 2 taps (link group {naming.link_group('nat')})",
        "remove address 192.168.122.1/24 from virbr0", "delete link virbr0"]
    assert [a.do for a in result.actions] == host.ran
    assert host.state() == before
    assert not (tmp_path / "nat").exists()


def test_the_taps_go_as_one_link_group(tmp_path):
    host, _ = applied(NAT, root=tmp_path)
    engine.destroy("nat", str(tmp_path), host=host)
    [group] = [s for s in host.ran if s.op == "links.del_group"]
    assert group.args == {"group": naming.link_group("nat"), "names": ["kn-nat-web-0", "kn-nat-other-0"]}
    assert group.describe() == f"delete 2 taps (link group {naming.link_group('nat')})"
    assert not {"kn-nat-web-0", "kn-nat-other-0"} & set(host.links_)


def test_a_foreign_link_in_the_group_is_spared(tmp_path):
    host, _ = applied(NAT, root=tmp_path)
    host._add_link("theirs", "tun", group=naming.link_group("nat"))
    engine.destroy("nat", str(tmp_path), host=host)
    assert "theirs" in host.links_ and "kn-nat-web-0" not in host.links_


def test_a_tap_not_in_the_hook_index_is_deleted_on_its_own(tmp_path):
    host, before = applied(NAT, root=tmp_path)
    rec = records.load(str(tmp_path), "nat")
    rec.taps = {"kn-nat-web-0": "default"}
    records.save(str(tmp_path), rec)
    engine.destroy("nat", str(tmp_path), host=host)
    assert [s.args for s in host.ran if s.op.startswith("link")] == [
        {"name": "kn-nat-other-0"}, {"group": naming.link_group("nat"), "names": ["kn-nat-web-0"]}, {"name": "virbr0"}]
    assert host.state() == before


def test_a_shared_fact_is_handed_over_then_restored_by_the_last(tmp_path):
    host, before = applied(NAT, ROUTED, root=tmp_path)
    assert before["sysctls"][FORWARD] == "0" and host.sysctls[FORWARD] == "1"
    engine.destroy("nat", str(tmp_path), host=host)
    assert host.sysctls[FORWARD] == "1"  # routed still forwards
    heir = dict(map(tuple, ((k, json.dumps(u)) for k, u in records.load(str(tmp_path), "routed").entries)))
    assert json.loads(heir[f"sysctl:{FORWARD}"]) == {"op": "sysctl.set", "args": {"path": FORWARD, "value": "0"}}
    assert "sysctl.set" not in [s.op for s in host.ran if s.args.get("path") == FORWARD]
    engine.destroy("routed", str(tmp_path), host=host)
    assert host.sysctls[FORWARD] == "0"
    assert host.state() == before


def test_the_hand_over_works_in_either_order(tmp_path):
    host, before = applied(NAT, ROUTED, root=tmp_path)
    engine.destroy("routed", str(tmp_path), host=host)
    assert host.sysctls[FORWARD] == "1"
    engine.destroy("nat", str(tmp_path), host=host)
    assert host.state() == before


def test_a_failed_undo_stops_nothing_else_and_a_second_destroy_finishes(tmp_path):
    host, before = applied(NAT, root=tmp_path)
    host.fail(op="firewall.delete")
    with pytest.raises(HostError) as exc:
        engine.destroy("nat", str(tmp_path), host=host)
    assert str(exc.value) == ("destroy could not finish (run it again once fixed): remove kvmnet's firewall rules "
                              "(nftables: table inet kvmnet_nat): fake host: firewall.delete failed (as told)")
    assert [k for k, _ in records.load(str(tmp_path), "nat").entries] == ["firewall:nftables:kvmnet_nat"]
    assert "virbr0" not in host.links_
    engine.destroy("nat", str(tmp_path), host=host)
    assert host.state() == before and not (tmp_path / "nat").exists()


def test_destroy_of_nothing_does_nothing(tmp_path):
    host = FakeHost()
    assert engine.destroy("nat", str(tmp_path), host=host).actions == [] and host.ran == []


def test_force_removes_kvmnets_own_names_without_a_record(tmp_path):
    topo = config.load(str(NAT))
    host, _ = applied(NAT, root=tmp_path)
    (tmp_path / "nat" / "state.json").write_text("{not json")
    with pytest.raises(InputError) as exc:
        engine.apply(topo, str(tmp_path), host=host)
    assert str(exc.value) == (f"{tmp_path}/nat/state.json: record is corrupt: not JSON (Expecting property name "
                              "enclosed in double quotes: line 1 column 2 (char 1)); `kvmnet destroy --force FILE` "
                              "removes what kvmnet made from its names")
    forced = engine.forced_record(topo, str(tmp_path), host=host)
    assert [k for k, _ in forced.entries] == ["link:virbr0", "link:kn-nat-web-0", "link:kn-nat-other-0",
                                             "firewall:nftables:kvmnet_nat", "dnsmasq:nat:default"]
    engine.destroy("nat", str(tmp_path), forced, host=host)
    assert not {"virbr0", "kn-nat-web-0", "kn-nat-other-0"} & set(host.links_)
    assert host.nft_tables == {} and host.dnsmasqs == {}
    assert host.sysctls[FORWARD] == "1"  # its original value is unknown without the record: left as it is


def test_force_removes_kvmnets_accepts_from_the_hosts_forward_chains(tmp_path):
    """Docker's DROP policies: the accepts kvmnet made for this topology's bridges, in either
    family, found by their exact form and comment; the others' rules stay."""
    dual = ROOT / "topologies" / "dual-stack.toml"
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    for chain in (host.forward, host.forward6):
        chain.update(policy="DROP", rules=["-A FORWARD -j DOCKER-USER"])
    host.forward6["rules"].append('-A FORWARD -i kvmds0 -m comment --comment "kvmnet other" -j ACCEPT')
    host, _ = applied(dual, host=host, root=tmp_path)
    assert len(host.forward["rules"]) == 3 and len(host.forward6["rules"]) == 4
    (tmp_path / "dual_stack" / "state.json").unlink()
    forced = engine.forced_record(config.load(str(dual)), str(tmp_path), host=host)
    assert [k for k, _ in forced.entries if k.startswith("fwaccept")] == ["fwaccept:kvmds0", "fwaccept6:kvmds0"]
    engine.destroy("dual_stack", str(tmp_path), forced, host=host)
    assert host.forward["rules"] == ["-A FORWARD -j DOCKER-USER"]
    assert host.forward6["rules"] == ["-A FORWARD -j DOCKER-USER",
                                      '-A FORWARD -i kvmds0 -m comment --comment "kvmnet other" -j ACCEPT']


def test_force_in_bridge_mode_detaches_the_uplink(tmp_path):
    topo = config.load(str(ROOT / "topologies" / "bridge.toml"))
    host, _ = applied(ROOT / "topologies" / "bridge.toml", root=tmp_path)
    forced = engine.forced_record(topo, str(tmp_path), host=host)
    assert forced.entries[:3] == [  # undone newest first: IPv6 on again once the uplink is released
        ["sysctl:net/ipv6/conf/eth0/disable_ipv6",
         {"op": "sysctl.set", "args": {"path": "net/ipv6/conf/eth0/disable_ipv6", "value": "0"}}],
        ["master:eth0", {"op": "link.set", "args": {"name": "eth0", "master": ""}}],
        ["link:br0", {"op": "link.del", "args": {"name": "br0"}}]]
    engine.destroy("bridge", str(tmp_path), forced, host=host)
    assert host.sysctls["net/ipv6/conf/eth0/disable_ipv6"] == "0" and "br0" not in host.links_


@pytest.mark.parametrize("text, reason", [
    ('{"version": 99, "entries": []}', "not a kvmnet state record of version 1"),
    ('["a list"]', "not a JSON object"),
    ('{"version": 1, "topology": "nat", "entries": {}}', "entries must be a list")])
def test_a_record_that_is_not_kvmnets_is_refused_by_name(text, reason, tmp_path):
    (tmp_path / "nat").mkdir()
    (tmp_path / "nat" / "state.json").write_text(text)
    with pytest.raises(InputError) as exc:
        engine.destroy("nat", str(tmp_path), host=FakeHost())
    assert str(exc.value) == (f"{tmp_path}/nat/state.json: record is corrupt: {reason}; "
                              "`kvmnet destroy --force FILE` removes what kvmnet made from its names")


def test_a_record_missing_its_topology_is_corrupt(tmp_path):
    (tmp_path / "nat").mkdir()
    (tmp_path / "nat" / "state.json").write_text('{"version": 1, "entries": []}')
    with pytest.raises(InputError) as exc:
        records.load(str(tmp_path), "nat")
    assert "record is corrupt: topology is None, not 'nat' (its directory)" in str(exc.value)


def test_a_killed_writers_temp_files_are_cleared(tmp_path):
    host, _ = applied(NAT, root=tmp_path)
    (tmp_path / "nat" / "state.json.tmp123").write_text("half")
    engine.compute(config.load(str(NAT)), str(tmp_path), host=host)
    assert sorted(p.name for p in (tmp_path / "nat").iterdir()) == ["hooks", records.SOURCE_FILE.format(
        records.source_digest(NAT.read_text())), "state.json"]


def test_all_records_lists_the_applied_topologies(tmp_path):
    applied(NAT, ROUTED, root=tmp_path)
    (tmp_path / "stray").mkdir()
    assert [r.topology for r in records.all_records(str(tmp_path))] == ["nat", "routed"]
    assert [r.topology for r in records.all_records(str(tmp_path), exclude="nat")] == ["routed"]


THREE_BRIDGES = "\n".join(f"""
[networks.n{i}]
mode = "isolated"
bridge = "kvb{i}"
subnet = "10.7{i}.0.0/24"
""" for i in range(3))


def _three_bridges(tmp_path, host=None):
    from helpers.configtext import load
    host = host or FakeHost()
    before = host.state()
    engine.apply(load('name = "tb"\n' + THREE_BRIDGES), str(tmp_path), host=host)
    host.ran.clear()
    return host, before


def test_the_bridges_go_as_one_link_group_after_their_addresses(tmp_path):
    host, before = _three_bridges(tmp_path)
    engine.destroy("tb", str(tmp_path), host=host)
    links = [s for s in host.ran if s.op.startswith("link")]
    assert [s.args for s in links] == [{"group": naming.bridge_group("tb"), "names": ["kvb2", "kvb1", "kvb0"], "what": "bridges"}]
    assert links[0].describe() == f"delete 3 bridges (link group {naming.bridge_group('tb')})"
    assert host.ran[-1] is links[0]  # the addresses went first, each from a bridge still there
    assert [s.op for s in host.ran[:-1]].count("addr.del") == 3
    assert host.state() == before and naming.bridge_group("tb") != naming.link_group("tb")


def test_bridges_made_before_the_group_are_deleted_one_by_one(tmp_path):
    host, before = _three_bridges(tmp_path)
    for name in ("kvb0", "kvb1", "kvb2"):
        host.links_[name]["group"] = 0  # as a kvmnet without bridge groups made them
    engine.destroy("tb", str(tmp_path), host=host)
    assert host.state() == before


def test_a_foreign_link_in_the_bridge_group_is_spared(tmp_path):
    host, _ = _three_bridges(tmp_path)
    host._add_link("theirs", "bridge", group=naming.bridge_group("tb"))
    engine.destroy("tb", str(tmp_path), host=host)
    assert "theirs" in host.links_ and not {"kvb0", "kvb1", "kvb2"} & set(host.links_)


THREE_NATS = "".join(f"""
[networks.n{j}]
mode = "nat"
bridge = "kvtn{j}"
subnet = "10.{80 + j}.0.0/24"
[networks.n{j}.dhcp]
start = "10.{80 + j}.0.100"
end = "10.{80 + j}.0.199"
""" for j in range(3))


def test_dnsmasq_stops_share_one_record_write_and_an_interrupted_run_is_finished_by_the_next(tmp_path, monkeypatch):
    path = tmp_path / "three.toml"
    path.write_text('name = "three"\n' + THREE_NATS)
    host = uplinked()
    before = host.state()
    engine.apply(config.load(str(path)), str(tmp_path), host=host)
    host.ran.clear()
    saved = []
    real_save = records.save
    monkeypatch.setattr(records, "save", lambda root, rec: (saved.append(len(rec.entries)), real_save(root, rec))[1])
    monkeypatch.setenv("KVMNET_FAULT_AT", "d2")  # after two of the three dnsmasq stops
    with pytest.raises(HostError, match="injected fault"):
        engine.destroy("three", str(tmp_path), host=host)
    assert saved == []  # the two stops were not written: run again, they find nothing to do
    assert [s.op for s in host.ran] == ["dnsmasq.stop", "dnsmasq.stop"]
    monkeypatch.delenv("KVMNET_FAULT_AT")
    result = engine.destroy("three", str(tmp_path), host=host)
    ops = [a.do.op for a in result.actions]
    assert ops[:4] == ["dnsmasq.stop"] * 3 + ["firewall.delete"]
    assert len(saved) == 1 + len(ops) - 3  # one write for the three stops, one for each other step
    assert host.state() == before and not (tmp_path / "three").exists()
