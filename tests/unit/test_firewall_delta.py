"""Forwards added to or removed from an intact nftables table are an element delta of its maps
in one transaction (firewall.elements), not a reload of the table: planned against an in-memory
host that models the delta as nft runs it (all of it or nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.fakehost import uplinked

from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.engine.record import CorruptRecord
from kvmnet.engine.stepschema import SchemaError, Where, check_step
from kvmnet.errors import HostError

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "tests" / "data" / "plans" / "nat-fresh" / "topology.toml").read_text()
TABLE = "kvmnet_topology"


def _topo(tmp_path, *forwards: tuple[int, str, int]) -> object:
    """nat-fresh's topology (web at .10, forward 8080 -> 80) with more forwards, and a guest db."""
    text = BASE + '\n[guests.db]\n[[guests.db.nics]]\nnetwork = "default"\nip = "192.168.122.11"\n'
    for port, guest, guest_port in forwards:
        text += f'\n[[networks.default.forwards]]\nhost_port = {port}\nguest = "{guest}"\nguest_port = {guest_port}\n'
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return config.load(str(path))


def _applied(tmp_path, *forwards):
    host, root = uplinked(), str(tmp_path / "state")
    engine.apply(_topo(tmp_path, *forwards), root, host=host)
    return host, root


def _elements(host) -> list[str]:
    return host.nft_tables[("inet", TABLE)]["maps"]["fwd_any"]["elements"]


def _fresh_table(tmp_path, *forwards) -> dict:
    """The table a first apply of the topology loads whole."""
    (tmp_path / "fresh").mkdir(exist_ok=True)
    host, _ = _applied(tmp_path / "fresh", *forwards)
    return host.nft_tables[("inet", TABLE)]


def test_adding_a_forward_is_an_element_delta_that_equals_a_full_load(tmp_path):
    host, root = _applied(tmp_path)
    rules_before = json.dumps(host.nft_tables[("inet", TABLE)]["chains"])
    host.ran.clear()
    result = engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)
    [step] = [a.do for a in result.actions if a.do.op.startswith("firewall")]
    assert step.op == "firewall.elements"
    assert step.command() == "nft 'add element inet kvmnet_topology fwd_any { tcp . 2222 : 192.168.122.11 . 22 }'"
    assert json.dumps(host.nft_tables[("inet", TABLE)]["chains"]) == rules_before  # no rule touched
    fresh = _fresh_table(tmp_path, (2222, "db", 22))
    assert sorted(_elements(host)) == sorted(fresh["maps"]["fwd_any"]["elements"])
    assert host.nft_tables[("inet", TABLE)]["chains"] == fresh["chains"]
    held = records.load(root, "topology").elements["firewall:nftables:kvmnet_topology"]
    assert held == {"fwd_any": ["tcp . 8080 : 192.168.122.10 . 80", "tcp . 2222 : 192.168.122.11 . 22"]}
    assert engine.compute(_topo(tmp_path, (2222, "db", 22)), root, host=host)[2] == []


def test_removing_and_repointing_forwards_is_one_delta(tmp_path):
    host, root = _applied(tmp_path, (2222, "db", 22), (2223, "db", 23))
    topo = _topo(tmp_path, (2222, "web", 2222))  # 2222 now to web; 2223 gone
    [action] = [a for a in engine.compute(topo, root, host=host)[2] if a.key.startswith("firewall")]
    assert action.do.args["delete"] == {"fwd_any": ["tcp . 2222 : 192.168.122.11 . 22", "tcp . 2223 : 192.168.122.11 . 23"]}
    assert action.do.args["add"] == {"fwd_any": ["tcp . 2222 : 192.168.122.10 . 2222"]}
    assert action.undo.args["add"] == action.do.args["delete"] and action.undo.args["delete"] == action.do.args["add"]
    engine.apply(topo, root, host=host)
    assert sorted(_elements(host)) == sorted(_fresh_table(tmp_path, (2222, "web", 2222))["maps"]["fwd_any"]["elements"])


def test_a_failure_after_the_delta_rolls_back_with_the_inverse_delta(tmp_path, monkeypatch):
    host, root = _applied(tmp_path, (2222, "db", 22))
    table_before, record_before = json.dumps(list(host.nft_tables.items())), records.load(root, "topology").to_json()
    ops = [a.do.op for a in engine.compute(_topo(tmp_path, (2223, "db", 23)), root, host=host)[2]]
    monkeypatch.setenv("KVMNET_FAULT_AT", f"{ops.index('firewall.elements')}+")  # right after the delta ran
    with pytest.raises(HostError, match="apply failed"):
        engine.apply(_topo(tmp_path, (2223, "db", 23)), root, host=host)
    monkeypatch.delenv("KVMNET_FAULT_AT")
    delta, undo = host.ran[-2:]  # the delta, then its inverse
    assert (delta.op, undo.op) == ("firewall.elements", "firewall.elements")
    assert (undo.args["add"], undo.args["delete"]) == (delta.args["delete"], delta.args["add"])
    assert json.dumps(list(host.nft_tables.items())) == table_before  # element for element, in order
    assert records.load(root, "topology").to_json() == record_before
    again = engine.compute(_topo(tmp_path, (2223, "db", 23)), root, host=host)[2]
    assert [a.do.op for a in again if a.key.startswith("firewall")] == ["firewall.elements"]  # still intact


def test_a_failed_delta_changes_nothing(tmp_path):
    host, root = _applied(tmp_path)
    table_before = json.dumps(list(host.nft_tables.items()))
    host.fail(op="firewall.elements")
    with pytest.raises(HostError):
        engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)
    assert json.dumps(list(host.nft_tables.items())) == table_before and "kn-topology-db-0" not in host.links_


def test_a_foreign_change_to_the_table_is_repaired_by_a_reload_not_a_delta(tmp_path):
    host, root = _applied(tmp_path, (2222, "db", 22))
    _elements(host)[0] = "tcp . 8080 : 10.9.9.9 . 80"  # same count, same comments: only the content differs
    [action] = [a for a in engine.compute(_topo(tmp_path, (2223, "db", 23)), root, host=host)[2]
                if a.key.startswith("firewall")]
    assert action.do.op == "firewall.apply" and "its forwards are not what kvmnet loaded" in action.do.describe()
    engine.apply(_topo(tmp_path, (2223, "db", 23)), root, host=host)
    assert sorted(_elements(host)) == sorted(_fresh_table(tmp_path, (2223, "db", 23))["maps"]["fwd_any"]["elements"])


def test_a_record_without_the_tables_elements_reloads_it(tmp_path):
    host, root = _applied(tmp_path)
    path = Path(root) / "topology" / "state.json"
    data = json.loads(path.read_text())
    del data["elements"]  # as a record written before element deltas
    path.write_text(json.dumps(data))
    [action] = [a for a in engine.compute(_topo(tmp_path, (2222, "db", 22)), root, host=host)[2]
                if a.key.startswith("firewall")]
    assert action.do.op == "firewall.apply" and "its forwards are not what kvmnet loaded" in action.do.describe()


def test_the_first_forward_of_a_network_changes_rules_so_it_reloads(tmp_path):
    host, root = _applied(tmp_path)
    text = (tmp_path / "topology.toml").read_text().replace(
        "[[networks.default.forwards]]\nproto = \"tcp\"\nhost_port = 8080\nguest = \"web\"\nguest_port = 80\n", "")
    (tmp_path / "topology.toml").write_text(text)
    [action] = [a for a in engine.compute(config.load(str(tmp_path / "topology.toml")), root, host=host)[2]
                if a.key.startswith("firewall")]
    assert action.do.op == "firewall.apply"  # the map and its lookup rules go: not an element change


@pytest.mark.parametrize("element", [
    "tcp . 1 : 1.2.3.4 . 80 }; flush ruleset; add element inet kvmnet_topology fwd_any { tcp . 2 : 1.2.3.4 . 80",
    "tcp . 1 : 1.2.3.4 . 80\nflush ruleset",
    "icmp . 1 : 1.2.3.4 . 80",
])
def test_a_record_whose_elements_are_not_map_elements_is_corrupt(tmp_path, element):
    host, root = _applied(tmp_path)
    path = Path(root) / "topology" / "state.json"
    data = json.loads(path.read_text())
    data["elements"]["firewall:nftables:kvmnet_topology"]["fwd_any"].append(element)
    path.write_text(json.dumps(data))
    with pytest.raises(CorruptRecord, match="is not a map element"):
        records.load(root, "topology")
    where = Where("topology", str(Path(root) / "topology"))
    step = {"op": "firewall.elements", "args": {"backend": "nftables", "table": TABLE, "summary": "",
                                                 "delete": {}, "add": {"fwd_any": [element]}}}
    with pytest.raises(SchemaError, match="is not a map element"):
        check_step(step, where)
    step["args"]["add"] = {"fwd_any": ["tcp . 1 : 1.2.3.4 . 80"]}
    check_step(step, where)  # a well-formed delta passes
    step["args"]["table"] = "kvmnet_other"
    with pytest.raises(SchemaError, match="not this topology's firewall"):
        check_step(step, where)


NAT6 = ROOT / "tests" / "data" / "topologies" / "nat6.toml"
NAT6_MORE = """
[[networks.masq.forwards]]
proto = "tcp"
host_port = 9090
guest = "web"
guest_port = 90

[[networks.masq.forwards]]
proto = "udp"
host_addr = "fd00:99::2"
host_port = 6000
guest = "web"
guest_port = 6000

[[networks.masq.forwards]]
proto = "tcp"
host_addr = "192.0.2.1"
host_port = 2223
guest = "web"
guest_port = 23
"""


def test_ipv6_and_host_address_maps_change_by_delta_too(tmp_path):
    host, root = uplinked(), str(tmp_path / "state")
    more = tmp_path / "nat6.toml"
    more.write_text(NAT6.read_text())
    engine.apply(config.load(str(more)), root, host=host)
    more.write_text(NAT6.read_text().replace("\n[networks.rt]", NAT6_MORE + "\n[networks.rt]"))
    result = engine.apply(config.load(str(more)), root, host=host)
    [step] = [a.do for a in result.actions if a.do.op.startswith("firewall")]
    assert step.op == "firewall.elements" and step.args["delete"] == {}
    assert step.args["add"] == {"fwd_any": ["tcp . 9090 : 10.66.0.10 . 90"],
                                "fwd_addr": ["192.0.2.1 . tcp . 2223 : 10.66.0.10 . 23"],
                                "fwd6_any": ["tcp . 9090 : fd00:66::10 . 90"],
                                "fwd6_addr": ["fd00:99::2 . udp . 6000 : fd00:66::10 . 6000"]}
    assert records.load(root, "nat6").elements  # the schema takes every map's elements
    fresh_host = uplinked()
    engine.apply(config.load(str(more)), str(tmp_path / "fresh"), host=fresh_host)
    table = host.nft_tables[("inet", "kvmnet_nat6")]
    fresh = fresh_host.nft_tables[("inet", "kvmnet_nat6")]
    assert {m: sorted(b["elements"]) for m, b in table["maps"].items()} == \
        {m: sorted(b["elements"]) for m, b in fresh["maps"].items()}
    assert table["chains"] == fresh["chains"]


def test_after_a_delta_the_verify_knows_the_table_from_the_generation_without_listing_it(tmp_path):
    host, root = _applied(tmp_path)
    host.nft_gen = 7  # model nftables' generation from here on
    engine.apply(_topo(tmp_path, (2223, "db", 23)), root, host=host)  # a delta; the record keeps a stamp
    listed = host.nft_listings
    engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)
    assert host.nft_gen == 9 and host.nft_listings == listed  # the delta's one commit; no listing at all
    kept = records.load(root, "topology").nft_seen
    assert kept["stamp"]["at"] == "fake-boot:1:9"
    # what it computed is what a listing shows
    assert {k: v for k, v in kept.items() if k != "stamp"} == host._nft_seen(TABLE, False)
    host.nft_gen += 1  # anyone's commit: the next observation lists, and finds the table in sync
    assert engine.compute(_topo(tmp_path, (2222, "db", 22)), root, host=host)[2] == []
    assert host.nft_listings == listed + 1


def _then_someone_elses_commit(host, step: str, monkeypatch) -> None:
    """The fake host's `step` (kvmnet's one nft commit), then someone else's commit right after,
    which adds an element to kvmnet's own map."""
    ours = getattr(host, step)

    def ours_then_theirs(args):
        ours(args)
        host.nft_gen += 1
        _elements(host).append("tcp . 5555 : 10.9.9.9 . 22")
    monkeypatch.setattr(host, step, ours_then_theirs)


def test_another_commit_during_the_apply_makes_the_verify_list(tmp_path, monkeypatch):
    host, root = _applied(tmp_path)
    host.nft_gen = 7
    engine.apply(_topo(tmp_path, (2223, "db", 23)), root, host=host)  # the record keeps a stamp
    listed = host.nft_listings
    _then_someone_elses_commit(host, "_firewall_elements", monkeypatch)
    with pytest.raises(HostError, match="after apply the host still differs"):
        engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)
    assert host.nft_listings == listed + 1  # the verify listed: the generation moved by two
    monkeypatch.undo()
    fixed = engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)
    assert [a.do.op for a in fixed.actions if a.key.startswith("firewall")] == ["firewall.apply"]
    assert "tcp . 5555 : 10.9.9.9 . 22" not in _elements(host)


def test_after_a_full_load_the_verify_lists_the_table_without_its_elements(tmp_path):
    host, root = uplinked(), str(tmp_path / "state")
    host.nft_gen = 7
    engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)  # cold: the table loaded whole
    assert host.nft_gen == 8
    assert (host.nft_listings, host.nft_terse_listings) == (1, 1)  # the first observation; the verify, terse
    kept = records.load(root, "topology").nft_seen
    assert kept["stamp"]["at"] == "fake-boot:1:8" and "terse" not in kept
    # what it took from the load is what a listing shows
    assert {k: v for k, v in kept.items() if k != "stamp"} == host._nft_seen(TABLE, False)


def test_another_commit_during_a_full_load_makes_the_verify_list_the_elements(tmp_path, monkeypatch):
    host, root = uplinked(), str(tmp_path / "state")
    host.nft_gen = 7
    _then_someone_elses_commit(host, "_firewall_apply", monkeypatch)
    with pytest.raises(HostError, match="after apply the host still differs"):
        engine.apply(_topo(tmp_path, (2222, "db", 22)), root, host=host)
    assert (host.nft_listings, host.nft_terse_listings) == (2, 0)  # the verify listed it all
