"""Changing an applied topology (renamed bridge, new dnsmasq config, two routing networks),
the undo of recorded steps judged from the host, step texts, fault points and the state dir."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import faults, plan, record as records, statedir
from kvmnet.engine.record import Record
from kvmnet.engine.steps import Step
from kvmnet.errors import HostError
from kvmnet.observed import Link, Observed

ROOT = Path(__file__).resolve().parents[2]
ISOLATED = (ROOT / "topologies" / "isolated.toml").read_text()


def write(tmp_path, text: str, name: str = "isolated.toml"):
    path = tmp_path / name
    path.write_text(text)
    return config.load(str(path))


def test_a_renamed_bridge_removes_the_old_one_first(tmp_path):
    host, state = FakeHost(), str(tmp_path / "state")
    before = host.state()
    engine.apply(write(tmp_path, ISOLATED), state, host=host)
    host.ran.clear()
    topo = write(tmp_path, ISOLATED.replace("kvmiso0", "kvmiso1"))
    engine.apply(topo, state, host=host)
    assert [s.describe() for s in host.ran][:2] == ["remove address 10.77.0.1/24 from kvmiso0", "delete link kvmiso0"]
    assert host.ops()[2] == "bridge.add"
    assert "kvmiso0" not in host.links_ and host.links_["kn-isolated-a-0"]["master"] == "kvmiso1"
    assert "link:kvmiso0" not in records.load(state, "isolated").keys()
    engine.destroy("isolated", state, host=host)
    assert host.state() == before


def test_a_failed_change_of_dnsmasq_config_restarts_the_old_one(tmp_path):
    host, state = FakeHost(), str(tmp_path / "state")
    engine.apply(write(tmp_path, ISOLATED), state, host=host)
    [old] = host.dnsmasqs.values()
    host.ran.clear()
    topo = write(tmp_path, ISOLATED.replace('end = "10.77.0.199"', 'end = "10.77.0.150"'))
    host.fail(op="dnsmasq.start")  # the one step; its undo restarts dnsmasq with the config it had
    with pytest.raises(HostError):
        engine.apply(topo, state, host=host)
    assert [s.op for s in host.failed] == host.ops() == ["dnsmasq.start"]
    [now] = host.dnsmasqs.values()
    assert now["conf_text"] == old["conf_text"] and "10.77.0.199" in now["conf_text"]


def test_two_routing_networks_ask_for_ip_forward_once(tmp_path):
    routed = (ROOT / "topologies" / "routed.toml").read_text()
    second = routed.replace("[networks.lab", "[networks.lab2").replace("kvmrt0", "kvmrt1").replace("10.80.", "10.81.")
    second = second.split("[guests")[0]
    host = FakeHost()
    engine.apply(write(tmp_path, routed + "\n" + second, "routed.toml"), str(tmp_path / "s"), host=host)
    assert [s.args["path"] for s in host.ran if s.op == "sysctl.set"].count("net/ipv4/ip_forward") == 1


def _removal(undo: Step, links: dict) -> Step | None:
    rec = Record("t", entries=[["k", undo.to_json()]])
    topo = config.load_text('[networks.u]\nmode = "user"\n', "t.toml")
    [action] = plan.plan(topo, Observed(links=links), rec, "/run/kvmnet/t")
    assert (action.kind, action.do) == ("remove", undo)
    return action.undo


def _link(name, kind, **kw) -> Link:
    return Link(**{"name": name, "index": 9, "kind": kind, "mtu": 1500, "up": True, "master": None,
                   "mac": "02:00:00:00:00:09", **kw})


def test_the_undo_of_a_recorded_step_is_judged_from_the_host():
    tap = _link("t0", "tun", master="br9", group=5)
    assert _removal(Step("link.del", {"name": "t0"}), {"t0": tap}) == Step(
        "tap.add", {"name": "t0", "master": "br9", "mac": "02:00:00:00:00:09", "mtu": 1500, "group": 5})
    assert _removal(Step("link.del", {"name": "v0"}), {"v0": _link("v0", "veth")}) is None
    assert _removal(Step("link.del", {"name": "gone"}), {}) is None
    assert _removal(Step("link.set", {"name": "gone", "master": ""}), {}) is None
    assert _removal(Step("link.set", {"name": "t0", "master": "", "up": False}), {"t0": tap}) == Step(
        "link.set", {"name": "t0", "master": "br9", "up": True})
    assert _removal(Step("fwaccept.del", {"bridge": "b", "specs": []}), {}) == Step(
        "fwaccept.add", {"bridge": "b", "specs": []})
    assert _removal(Step("dnsmasq.stop", {"network": "n"}), {}) is None


@pytest.mark.parametrize("step, describe, command", [
    (Step("link.set", {"name": "br0", "stp": True, "forward_delay": 2, "up": False}),
     "set link br0 type bridge stp_state 1 forward_delay 200 down", "ip link set br0 type bridge stp_state 1 forward_delay 200 down"),
    (Step("link.set", {"name": "br0", "forward_delay": 3}), "set link br0 type bridge forward_delay 300",
     "ip link set br0 type bridge forward_delay 300"),
    (Step("route.add", {"route": {"family": 6, "dst": "2001:db8::/64", "dev": "br0", "gateway": "fe80::1",
                                  "metric": 100, "proto": "ra"}}),
     "add route 2001:db8::/64 via fe80::1 dev br0 metric 100 proto ra",
     "ip -6 route add 2001:db8::/64 via fe80::1 dev br0 metric 100 proto ra"),
    (Step("tap.add", {"name": "t0", "master": "br0", "mtu": 9000}), "create tap t0 on bridge br0",
     "ip tuntap add dev t0 mode tap vnet_hdr && ip link set t0 mtu 9000 master br0 up"),
    (Step("fwaccept.del", {"bridge": "br0", "specs": [["-i", "br0", "-m", "comment", "--comment", "kvmnet x", "-j", "ACCEPT"]]}),
     "remove kvmnet's accepts for br0 from the host's filter FORWARD chain",
     "iptables -D FORWARD -i br0 -m comment --comment 'kvmnet x' -j ACCEPT"),
])
def test_steps_say_what_they_do_in_words_and_as_a_command(step, describe, command):
    assert (step.describe(), step.command()) == (describe, command)


def test_an_action_as_json_carries_its_words():
    [action] = plan.plan(config.load_text('[networks.u]\nmode = "user"\n', "t.toml"), Observed(),
                         Record("t", entries=[["k", {"op": "addr.del", "args": {"link": "a", "cidr": "10.0.0.1/8"}}]]),
                         "/run/kvmnet/t")
    assert action.to_json() == {"key": "k", "kind": "remove",
                                "do": {"op": "addr.del", "args": {"link": "a", "cidr": "10.0.0.1/8"}},
                                "undo": {"op": "addr.add", "args": {"link": "a", "cidr": "10.0.0.1/8"}},
                                "describe": "remove address 10.0.0.1/8 from a", "command": "ip addr del 10.0.0.1/8 dev a"}


def test_a_fault_point_raises_when_named(monkeypatch):
    faults.check(3)
    monkeypatch.setenv("KVMNET_FAULT_AT", "3+")
    faults.check(3)
    with pytest.raises(HostError) as exc:
        faults.check("3+")
    assert str(exc.value) == "injected fault before step 3+ (KVMNET_FAULT_AT)"


def test_the_state_dir_is_the_option_then_the_environment_then_run(monkeypatch):
    assert statedir.resolve("/x") == "/x"
    monkeypatch.setenv("KVMNET_STATE_DIR", "/y")
    assert statedir.resolve(None) == "/y"
    monkeypatch.delenv("KVMNET_STATE_DIR")
    assert statedir.resolve(None) in (statedir.DEFAULT_STATE_DIR, os.path.join(statedir.DEFAULT_STATE_DIR, "netns",
                                                                                  str(statedir._netns_name())))


def test_the_lock_serializes_holders_and_topologies_lists_dirs(tmp_path):
    root = str(tmp_path / "state")
    got = threading.Event()

    def second():
        with statedir.locked(root):
            got.set()

    with statedir.locked(root):
        thread = threading.Thread(target=second)
        thread.start()
        assert not got.wait(0.2)
    thread.join(5)
    assert got.is_set()
    (tmp_path / "state" / "b").mkdir()
    (tmp_path / "state" / "a").mkdir()
    assert statedir.topologies(root) == ["a", "b"] and statedir.topologies(str(tmp_path / "none")) == []
