"""Bandwidth limits against the in-memory host: planned with their tc commands, recorded,
drift-repaired, changed, dropped and destroyed exactly; and the record schema keeps an undo
from deleting a link that is not kvmnet's ifb."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine, naming
from kvmnet.config.attach import rate, size
from kvmnet.engine import record as records
from kvmnet.engine.stepschema import SchemaError, Where, check_step
from kvmnet.render.tc import ifb_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "topologies" / "bandwidth.toml"
TAP_LIMIT = '{ inbound = "10mbit", outbound = "10mbit", burst = "64kb" }'

TAP = naming.tap_name("bw", "g", 0)  # the derived tap of guest g in topology bw


def topo(nic_limit: str | None = TAP_LIMIT, net_limit: str | None = None):
    text = ('name = "bw"\n[networks.n]\nmode = "isolated"\nbridge = "kvbw0"\n'
            + (f"bandwidth = {net_limit}\n" if net_limit else "")
            + '[[guests.g.nics]]\nnetwork = "n"\nmac = "52:54:00:00:00:aa"\n'
            + (f"bandwidth = {nic_limit}\n" if nic_limit else ""))
    return config.load_text(text, "bw.toml")


def test_units_are_tcs():
    assert rate("10mbit") == 10_000_000 and rate("512kbit") == 512_000 and rate("1.5gbit") == 1_500_000_000
    assert rate("1mbps") == 8_000_000 and rate("10mb") is None
    assert size("64kb") == 65536 and size("1mb") == 1048576 and size("1500") == 1500 and size("1mbit") is None


def test_plan_shows_the_tc_commands(tmp_path):
    actions = engine.compute(topo(), str(tmp_path), host=FakeHost())[2]
    ifb = ifb_name("bw", TAP)
    commands = [a.do.command() for a in actions if a.do.op == "tc.limit"]
    assert commands == [
        f"tc qdisc replace dev {TAP} root tbf rate 10mbit burst 65536 latency 50ms",
        f"ip link add {ifb} type ifb && ip link set {ifb} up && "
        f"tc qdisc replace dev {ifb} root tbf rate 10mbit burst 65536 latency 50ms && "
        f"tc qdisc replace dev {TAP} handle ffff: ingress && "
        f"tc filter add dev {TAP} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev {ifb}"]


def test_apply_shapes_both_directions_records_the_undo_and_destroy_is_exact(tmp_path):
    host = FakeHost()
    before = host.state()
    engine.apply(topo(), str(tmp_path), host=host)
    ifb = ifb_name("bw", TAP)
    assert host.qdiscs_[TAP] == {"root": {"kind": "tbf", "rate": 1_250_000, "burst": 65535}, "redirect": ifb}
    assert host.qdiscs_[ifb]["root"]["rate"] == 1_250_000 and host.links_[ifb]["kind"] == "ifb"
    undo = dict(records.load(str(tmp_path), "bw").entries)
    assert undo[f"tc:in:{TAP}"] == {"op": "tc.unlimit", "args": {"dev": TAP, "direction": "in"}}
    assert undo[f"tc:out:{TAP}"]["args"] == {"dev": TAP, "direction": "out", "ifb": ifb}
    assert engine.apply(topo(), str(tmp_path), host=host).actions == []
    engine.destroy("bw", str(tmp_path), host=host)
    assert host.state() == before


@pytest.mark.parametrize("damage", ["root qdisc deleted", "redirect deleted", "ifb deleted", "rate changed"])
def test_drift_is_repaired(damage, tmp_path):
    host = FakeHost()
    engine.apply(topo(), str(tmp_path), host=host)
    ifb = ifb_name("bw", TAP)
    if damage == "root qdisc deleted":
        host.qdiscs_[TAP]["root"] = None
    elif damage == "redirect deleted":
        host.qdiscs_[TAP]["redirect"] = None
    elif damage == "ifb deleted":
        host._link_del({"name": ifb})
    else:
        host.qdiscs_[ifb]["root"]["rate"] = 999
    actions = engine.apply(topo(), str(tmp_path), host=host).actions
    assert [(a.kind, a.do.op) for a in actions] == [("modify", "tc.limit")]
    assert engine.compute(topo(), str(tmp_path), host=host)[2] == []


def test_a_changed_limit_is_replaced_and_a_dropped_one_removed(tmp_path):
    host = FakeHost()
    engine.apply(topo(), str(tmp_path), host=host)
    engine.apply(topo('{ inbound = "20mbit" }'), str(tmp_path), host=host)
    ifb = ifb_name("bw", TAP)
    assert host.qdiscs_[TAP] == {"root": {"kind": "tbf", "rate": 2_500_000, "burst": 49999}, "redirect": None}
    assert ifb not in host.links_ and f"tc:out:{TAP}" not in records.load(str(tmp_path), "bw").keys()
    engine.apply(topo(None), str(tmp_path), host=host)
    assert TAP not in host.qdiscs_ and not any(k.startswith("tc:") for k in records.load(str(tmp_path), "bw").keys())


def test_a_network_limit_sits_on_the_bridge(tmp_path):
    host = FakeHost()
    engine.apply(topo(None, '{ inbound = "100mbit", outbound = "50mbit" }'), str(tmp_path), host=host)
    assert host.qdiscs_["kvbw0"] == {"root": {"kind": "tbf", "rate": 12_500_000, "burst": 249999},
                                     "redirect": ifb_name("bw", "kvbw0")}
    assert host.qdiscs_[ifb_name("bw", "kvbw0")]["root"]["rate"] == 6_250_000


def test_the_example_topology_applies_and_destroys(tmp_path):
    host = FakeHost()
    before = host.state()
    engine.apply(config.load(str(EXAMPLE)), str(tmp_path), host=host)
    assert set(host.qdiscs_) >= {"kvmbw0", naming.tap_name("bandwidth", "web", 0)} and naming.tap_name("bandwidth", "batch", 0) not in host.qdiscs_
    engine.destroy("bandwidth", str(tmp_path), host=host)
    assert host.state() == before


WHERE = Where("bw", "/run/kvmnet/bw")


def test_the_schema_refuses_an_ifb_that_is_not_this_topologys():
    ok = {"dev": TAP, "direction": "out", "ifb": ifb_name("bw", TAP)}
    check_step({"op": "tc.unlimit", "args": ok}, WHERE)
    for bad, why in ((dict(ok, ifb="eth0"), "is not this topology's ifb"),
                     (dict(ok, ifb=ifb_name("other", TAP)), "is not this topology's ifb"),
                     ({"dev": TAP, "direction": "out"}, "needs its ifb"),
                     ({"dev": TAP, "direction": "sideways"}, "is not in or out")):
        with pytest.raises(SchemaError, match=why):
            check_step({"op": "tc.unlimit", "args": bad}, WHERE)
