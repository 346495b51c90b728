"""Direct networks (a macvtap per guest NIC on an uplink) against the in-memory host: planned
with their `ip link` commands, owned and destroyed exactly, drift repaired, and QEMU handed the
macvtap as an open /dev/tapN on the descriptor its fd= names."""

from __future__ import annotations

from pathlib import Path

from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine.qemu_command import direct_devices
from kvmnet.render.qemu import guest_args

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "topologies" / "direct.toml"


def host() -> FakeHost:
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01")


def test_plan_shows_the_macvtap_and_the_hosts_macvlan(tmp_path):
    actions = engine.compute(config.load(str(EXAMPLE)), str(tmp_path), host=host())[2]
    assert [a.do.command() for a in actions] == [
        "ip link add kvmhost0 link eth0 type macvlan mode bridge && ip link set kvmhost0 up",
        "ip addr add 192.0.2.250/24 dev kvmhost0",
        "ip link add kn-direct-web-0 link eth0 type macvtap mode bridge && ip link set kn-direct-web-0 address 52:54:00:15:00:10 up"]


def test_apply_owns_the_macvtaps_and_destroy_removes_exactly_them(tmp_path):
    h = host()
    before = h.state()
    topo = config.load(str(EXAMPLE))
    engine.apply(topo, str(tmp_path), host=h)
    assert h.links_["kn-direct-web-0"]["kind"] == "macvtap" and h.links_["kn-direct-web-0"]["mac"] == "52:54:00:15:00:10"
    assert h.links_["kvmhost0"]["kind"] == "macvlan" and h.addrs_["kvmhost0"] == {"192.0.2.250/24"}
    assert engine.apply(topo, str(tmp_path), host=h).actions == []
    h.links_["kn-direct-web-0"]["mac"] = "52:54:00:99:99:99"  # drift: repaired, not re-created
    assert [(a.kind, a.do.op) for a in engine.apply(topo, str(tmp_path), host=h).actions] == [("modify", "link.set")]
    engine.destroy("direct", str(tmp_path), host=h)
    assert h.state() == before


def test_qemu_gets_the_macvtap_as_an_open_descriptor(tmp_path):
    h = host()
    topo = config.load(str(EXAMPLE))
    engine.apply(topo, str(tmp_path), host=h)
    [args] = guest_args(topo, topo.guest("web"))
    assert args[:2] == ["-netdev", "tap,id=net0,fd=3"]
    assert direct_devices(topo, "web", host=h) == [(3, f"/dev/tap{h.links_['kn-direct-web-0']['index']}")]
