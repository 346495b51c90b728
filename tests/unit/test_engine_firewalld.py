"""firewalld on the in-memory host: bridges bound to kvmnet's zones (created when missing, shared
between topologies, deleted by the last one), bindings re-made after a reload (by apply or
watch), an admin's choice of zone left alone, nothing wanted without firewalld, and records
whose firewalld steps name anyone else's zone refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.engine.record import CorruptRecord
from kvmnet.engine.watch import Watcher
from kvmnet.errors import HostError

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED, ISOLATED = (str(ROOT / "topologies" / f"{n}.toml") for n in ("nat", "routed", "isolated"))


@pytest.fixture
def host():
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1").with_firewalld()


def test_apply_creates_the_zone_and_binds_the_bridge(host, tmp_path):
    state = str(tmp_path)
    result = engine.apply(config.load(NAT), state, host=host)
    done = [a.do.describe() for a in result.actions]
    assert "create firewalld zone kvmnet (dhcp, dhcpv6, dns; forwarding accepted)" in done
    assert "bind virbr0 to firewalld zone kvmnet" in done
    assert host.firewalld_["bindings"] == {"virbr0": "kvmnet"} and "kvmnet" in host.firewalld_["permanent"]
    assert engine.apply(config.load(NAT), state, host=host).actions == []  # in sync: nothing to do


def test_a_reload_drops_the_binding_and_apply_or_watch_makes_it_again(host, tmp_path):
    state = str(tmp_path)
    engine.apply(config.load(NAT), state, host=host)
    host.firewalld_reload()
    assert host.firewalld_["bindings"] == {}
    lines = []
    Watcher(state, lines.append, host=host).sync()
    assert len(lines) == 1 and "(drifted: firewalld:bind:virbr0): bind virbr0 to firewalld zone kvmnet" in lines[0]
    assert host.firewalld_["bindings"] == {"virbr0": "kvmnet"} and host.firewalld_["reloads"] == 2


def test_destroy_unbinds_and_the_last_topology_deletes_the_zone(host, tmp_path):
    state = str(tmp_path)
    engine.apply(config.load(NAT), state, host=host)
    engine.apply(config.load(ROUTED), state, host=host)
    assert host.firewalld_["bindings"] == {"virbr0": "kvmnet", "kvmrt0": "kvmnet"}
    assert records.load(state, "routed").entries[0:0] == [] and \
        ["firewalld:zone:kvmnet", None] in records.load(state, "routed").entries  # needed, not made
    engine.destroy("nat", state, host=host)
    assert host.firewalld_["bindings"] == {"kvmrt0": "kvmnet"}
    assert "kvmnet" in host.firewalld_["permanent"]  # routed still needs it: handed over
    engine.destroy("routed", state, host=host)
    assert host.firewalld_["bindings"] == {} and "kvmnet" not in host.firewalld_["permanent"]


def test_tftp_networks_get_their_own_zone(host, tmp_path):
    text = Path(ISOLATED).read_text()
    f = tmp_path / "pxe.toml"
    f.write_text(text.replace('mode = "isolated"', 'mode = "isolated"\ntftp_root = "/srv/tftp"', 1))
    engine.apply(config.load(str(f)), str(tmp_path / "state"), host=host)
    assert set(host.firewalld_["bindings"].values()) == {"kvmnet-tftp"}
    assert "kvmnet" not in host.firewalld_["permanent"]


def test_a_zone_the_admin_chose_is_left_alone(host, tmp_path):
    host.firewalld_["zones"].add("kvmnet")
    host.firewalld_["permanent"].add("kvmnet")
    host.firewalld_["bindings"]["virbr0"] = "trusted"
    result = engine.apply(config.load(NAT), str(tmp_path), host=host)
    assert not [a for a in result.actions if a.key == "firewalld:bind:virbr0"]
    assert host.firewalld_["bindings"] == {"virbr0": "trusted"}
    engine.destroy("nat", str(tmp_path), host=host)
    assert host.firewalld_["bindings"] == {"virbr0": "trusted"}


def test_without_firewalld_nothing_is_wanted_and_nothing_recorded_is_undone(tmp_path):
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    result = engine.apply(config.load(NAT), str(tmp_path), host=host)
    assert not [a for a in result.actions if a.key.startswith("firewalld:")]
    host.with_firewalld()
    engine.apply(config.load(NAT), str(tmp_path), host=host)
    host.firewalld_ = None  # firewalld stopped: its bindings went with it
    assert engine.Context(config.load(NAT), str(tmp_path), host=host).actions == []
    engine.destroy("nat", str(tmp_path), host=host)  # the undos have nothing to do
    assert not (tmp_path / "nat").exists()


def test_a_zone_an_earlier_kvmnet_made_gets_its_policy_and_a_rollback_keeps_the_zone(host, tmp_path):
    """Its policy (any zone into it) is added by zone.add; that step's undo must not delete the
    zone other topologies' bridges are in, when the apply fails after it."""
    state = str(tmp_path)
    engine.apply(config.load(NAT), state, host=host)
    host.firewalld_["unpolicied"] = {"kvmnet"}  # (as an earlier kvmnet left it)
    host.fail(op="firewalld.bind")
    with pytest.raises(Exception, match="firewalld.bind failed"):
        engine.apply(config.load(ROUTED), state, host=host)
    assert "kvmnet" in host.firewalld_["permanent"] and host.firewalld_["bindings"]["virbr0"] == "kvmnet"
    assert host.firewalld_["unpolicied"] == set()  # the policy was added, and stays
    done = [a.do.describe() for a in engine.apply(config.load(ROUTED), state, host=host).actions]
    assert not any("zone" in d and "create" in d for d in done) and "bind kvmrt0 to firewalld zone kvmnet" in done


def test_a_failed_bind_rolls_back_the_zone(host, tmp_path):
    before = host.state()
    host.fail(op="firewalld.bind")
    with pytest.raises(Exception, match="firewalld.bind failed"):
        engine.apply(config.load(NAT), str(tmp_path), host=host)
    after = host.state()
    assert after["firewalld"]["permanent"] == before["firewalld"]["permanent"]
    assert after["links"] == before["links"]


@pytest.mark.parametrize("undo", [{"op": "firewalld.zone.del", "args": {"zone": "public"}},
                                  {"op": "firewalld.unbind", "args": {"bridge": "eth0", "zone": "drop"}},
                                  {"op": "firewalld.zone.add", "args": {"zone": "kvmnet", "services": ["ssh; rm"]}}])
def test_records_naming_other_zones_are_refused(host, tmp_path, undo):
    engine.apply(config.load(NAT), str(tmp_path), host=host)
    path = Path(records.path_for(str(tmp_path), "nat"))
    data = json.loads(path.read_text())
    data["entries"].append(["firewalld:zone:evil", undo])
    path.write_text(json.dumps(data))
    with pytest.raises(CorruptRecord, match="firewalld"):
        records.load(str(tmp_path), "nat")


def test_a_network_that_gains_tftp_moves_its_bridge_and_destroy_unbinds_it(host, tmp_path):
    """The zone kvmnet-tftp exists already (another topology's): the bridge bound to `kvmnet` is
    moved, and the record's undo names the zone it is in now."""
    state, f = str(tmp_path / "state"), tmp_path / "iso.toml"
    host.firewalld_["zones"].add("kvmnet-tftp")
    host.firewalld_["permanent"].add("kvmnet-tftp")
    f.write_text(Path(ISOLATED).read_text())
    engine.apply(config.load(str(f)), state, host=host)
    bridge = next(iter(host.firewalld_["bindings"]))
    assert host.firewalld_["bindings"] == {bridge: "kvmnet"}
    f.write_text(Path(ISOLATED).read_text().replace('mode = "isolated"', 'mode = "isolated"\ntftp_root = "/srv/tftp"', 1))
    done = [a.do.describe() for a in engine.apply(config.load(str(f)), state, host=host).actions]
    assert done[:1] == [f"unbind {bridge} from firewalld zone kvmnet"] and f"bind {bridge} to firewalld zone kvmnet-tftp" in done
    assert host.firewalld_["bindings"] == {bridge: "kvmnet-tftp"}
    assert engine.apply(config.load(str(f)), state, host=host).actions == []
    engine.destroy("iso", state, host=host)
    assert host.firewalld_["bindings"] == {}


def _tftp(text: str) -> str:
    return text.replace('mode = "isolated"', 'mode = "isolated"\ntftp_root = "/srv/tftp"', 1)


def test_a_failed_apply_rolls_back_the_unbind_and_the_zone_deletion(host, tmp_path):
    state, f = str(tmp_path / "state"), tmp_path / "iso.toml"
    f.write_text(Path(ISOLATED).read_text())
    engine.apply(config.load(str(f)), state, host=host)
    before, entries = host.state(), records.load(state, "iso").entries
    f.write_text(_tftp(f.read_text()))
    host.fail(op="firewall.apply")
    with pytest.raises(HostError):
        engine.apply(config.load(str(f)), state, host=host)
    after = host.state()
    assert after["firewalld"]["bindings"] == before["firewalld"]["bindings"] != {}
    assert "kvmnet" in host.firewalld_["permanent"] and records.load(state, "iso").entries == entries


def test_a_record_of_an_older_version_keeps_a_tftp_binding_under_the_old_key(host, tmp_path):
    """Before a binding was a fact per zone, `firewalld:bind:<bridge>` held a kvmnet-tftp
    binding too: the apply after the upgrade finds it in sync, and destroy unbinds it."""
    state, f = str(tmp_path / "state"), tmp_path / "iso.toml"
    f.write_text(_tftp(Path(ISOLATED).read_text()))
    engine.apply(config.load(str(f)), state, host=host)
    bridge = next(iter(host.firewalld_["bindings"]))
    path = Path(state) / "iso" / "state.json"
    data = json.loads(path.read_text())
    data["entries"] = [[f"firewalld:bind:{bridge}" if k.startswith("firewalld:bind:") else k, u] for k, u in data["entries"]]
    path.write_text(json.dumps(data))
    assert engine.apply(config.load(str(f)), state, host=host).actions == []
    assert host.firewalld_["bindings"] == {bridge: "kvmnet-tftp"}
    engine.destroy("iso", state, host=host)
    assert host.firewalld_["bindings"] == {}
