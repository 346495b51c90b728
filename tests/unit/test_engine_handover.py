"""A host-wide fact (ip_forward, kvmnet's firewalld zone) that an edited file no longer needs is
handed to another applied topology that still holds it, as destroy hands it over: the apply
must not revert it under that topology's guests. The last holder reverts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.errors import HostError

ROOT = Path(__file__).resolve().parents[2]
ROUTED = str(ROOT / "topologies" / "routed.toml")
FORWARD = "net/ipv4/ip_forward"
ISOLATED = ('[networks.default]\nmode = "isolated"\nbridge = "virbr0"\nsubnet = "192.168.122.0/24"\n'
            'gateway = "192.168.122.1"\n{extra}')


@pytest.fixture
def host():
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")


def _nat_copy(tmp_path) -> Path:
    """topologies/nat.toml copied into `tmp_path`, for the test to edit."""
    nat = tmp_path / "nat.toml"
    nat.write_text((ROOT / "topologies" / "nat.toml").read_text())
    return nat


def _nat_then_routed(host, tmp_path) -> tuple[Path, dict]:
    """nat.toml (a copy: the test edits it) applied first, so its record made the fact, then
    routed.toml, whose record holds the fact as needed, not made."""
    nat = _nat_copy(tmp_path)
    before = host.state()
    for path in (nat, ROUTED):
        engine.apply(config.load(str(path)), str(tmp_path / "state"), host=host)
    return nat, before


def _undo(state: str, topology: str, key: str):
    return dict(map(tuple, records.load(state, topology).entries)).get(key, "absent")


def test_an_apply_that_drops_ip_forward_hands_it_to_the_topology_that_still_routes(host, tmp_path):
    nat, before = _nat_then_routed(host, tmp_path)
    state, key = str(tmp_path / "state"), f"sysctl:{FORWARD}"
    assert before["sysctls"][FORWARD] == "0" and _undo(state, "routed", key) is None
    host.ran.clear()
    nat.write_text(ISOLATED.format(extra=""))
    planned = engine.Context(config.load(str(nat)), state, host=host).actions
    done = engine.apply(config.load(str(nat)), state, host=host).actions
    said = [a.do.describe() for a in done if a.key == key]
    assert said == [a.do.describe() for a in planned if a.key == key] == [
        f"leave {key} as it is: topology routed still needs it, and its record takes the undo (set sysctl {FORWARD.replace('/', '.')} = 0)"]
    assert host.sysctls[FORWARD] == "1"  # routed still forwards
    assert [s for s in host.ran if s.args.get("path") == FORWARD] == []
    assert _undo(state, "nat", key) == "absent"
    assert _undo(state, "routed", key) == {"op": "sysctl.set", "args": {"path": FORWARD, "value": "0"}}
    engine.destroy("routed", state, host=host)
    assert host.sysctls[FORWARD] == "0"  # the last holder reverts it
    engine.destroy("nat", state, host=host)
    assert host.state() == before


def test_without_another_holder_the_apply_reverts_it(host, tmp_path):
    nat = _nat_copy(tmp_path)
    state = str(tmp_path / "state")
    engine.apply(config.load(str(nat)), state, host=host)
    nat.write_text(ISOLATED.format(extra=""))
    engine.apply(config.load(str(nat)), state, host=host)
    assert host.sysctls[FORWARD] == "0"


def test_a_failed_apply_after_the_hand_over_leaves_both_holding_it(host, tmp_path):
    nat, before = _nat_then_routed(host, tmp_path)
    state, key = str(tmp_path / "state"), f"sysctl:{FORWARD}"
    nat.write_text(ISOLATED.format(extra=""))
    host.fail(op="firewall.apply")  # after the removals (the hand-over is one of them)
    with pytest.raises(HostError):
        engine.apply(config.load(str(nat)), state, host=host)
    assert _undo(state, "nat", key) == _undo(state, "routed", key) == {
        "op": "sysctl.set", "args": {"path": FORWARD, "value": "0"}}
    assert host.sysctls[FORWARD] == "1"
    engine.destroy("routed", state, host=host)
    assert host.sysctls[FORWARD] == "1"  # nat's record still holds it: handed back on destroy
    engine.destroy("nat", state, host=host)
    assert host.state() == before


def test_an_apply_that_drops_the_firewalld_zone_hands_it_over(tmp_path):
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1").with_firewalld()
    nat, before = _nat_then_routed(host, tmp_path)
    state = str(tmp_path / "state")
    nat.write_text(ISOLATED.format(extra='tftp_root = "/srv/tftp"\n'))  # its own zone, kvmnet-tftp
    reloads = host.firewalld_["reloads"]
    engine.apply(config.load(str(nat)), state, host=host)
    assert "kvmnet" in host.firewalld_["permanent"]
    # creating kvmnet-tftp reloaded firewalld, and routed's binding was made again at once
    assert host.firewalld_["reloads"] == reloads + 1
    assert host.firewalld_["bindings"] == {"virbr0": "kvmnet-tftp", "kvmrt0": "kvmnet"}
    assert not engine.apply(config.load(ROUTED), state, host=host).actions
    assert _undo(state, "routed", "firewalld:zone:kvmnet") not in (None, "absent")
    engine.destroy("routed", state, host=host)
    assert "kvmnet" not in host.firewalld_["permanent"]
    engine.destroy("nat", state, host=host)
    after = host.state()
    assert after.pop("firewalld")["bindings"] == {} and host.firewalld_["permanent"] == before.pop("firewalld")["permanent"]
    assert after == before  # (firewalld's runtime copies of the zones go at its next reload, as kvmnet leaves them)


def test_a_run_stopped_right_after_the_hand_over_converges(host, tmp_path, monkeypatch):
    """Stopped between the heir's record write and the giver's (KVMNET_FAULT_AT: the records on
    disk are what a SIGKILL there leaves), both hold the undo; the next apply completes it."""
    nat, before = _nat_then_routed(host, tmp_path)
    state, key = str(tmp_path / "state"), f"sysctl:{FORWARD}"
    nat.write_text(ISOLATED.format(extra=""))
    planned = engine.Context(config.load(str(nat)), state, host=host).actions
    at = next(i for i, a in enumerate(planned) if a.key == key)
    monkeypatch.setenv("KVMNET_FAULT_AT", f"{at}+")
    with pytest.raises(HostError, match="injected fault"):
        engine.apply(config.load(str(nat)), state, host=host)
    monkeypatch.delenv("KVMNET_FAULT_AT")
    undo = {"op": "sysctl.set", "args": {"path": FORWARD, "value": "0"}}
    assert _undo(state, "nat", key) == _undo(state, "routed", key) == undo
    engine.apply(config.load(str(nat)), state, host=host)
    assert (_undo(state, "nat", key), _undo(state, "routed", key)) == ("absent", undo)
    assert host.sysctls[FORWARD] == "1"
    engine.destroy("routed", state, host=host)
    engine.destroy("nat", state, host=host)
    assert host.state() == before


def test_a_shared_fact_a_topology_no_longer_needs_leaves_its_record(host, tmp_path):
    """routed needed ip_forward (nat made it); edited to need it no more, its record drops the
    entry, so nat's destroy restores the sysctl instead of handing it to routed."""
    nat = _nat_copy(tmp_path)
    routed = tmp_path / "routed.toml"
    routed.write_text(Path(ROUTED).read_text())
    state, key = str(tmp_path / "state"), f"sysctl:{FORWARD}"
    before = host.state()
    for path in (nat, routed):
        engine.apply(config.load(str(path)), state, host=host)
    assert _undo(state, "routed", key) is None
    routed.write_text(ISOLATED.format(extra="").replace("virbr0", "kvmrt9").replace("192.168.122", "10.77.0"))
    engine.apply(config.load(str(routed)), state, host=host)
    assert _undo(state, "routed", key) == "absent"
    assert not [k for k, u in records.load(state, "routed").entries if u is None and "kvmrt0" in k]  # the old bridge's
    engine.destroy("nat", state, host=host)
    assert host.sysctls[FORWARD] == "0"
    engine.destroy("routed", state, host=host)
    assert host.state() == before
