"""dnsmasq in the engine, on the fake host: per-topology keys (two topologies with a network of
the same name), old records' keys, restart on a re-created bridge, reload (not restart) for
hosts and static leases, no executable in any step, `destroy --force` naming only what is
there, and a listener on a port kvmnet already forwards."""

import json
from pathlib import Path

import pytest

from helpers.fakehost import FakeHost, uplinked
from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.errors import InputError
from kvmnet.render import dnsmasq as render

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "topologies"
NAT_LAB = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"


def load(path) -> "Topology":
    return config.load(str(path))


def _networks_running(host: FakeHost) -> set[str]:
    return {conf.split("/")[-2] for conf in host.dnsmasqs}  # <root>/<topology>/dnsmasq-NET.conf


def test_two_topologies_with_a_network_of_the_same_name_each_stop_their_own(tmp_path):
    host, root = uplinked(), str(tmp_path)
    before = host.state()
    for name in ("isolated", "routed"):
        engine.apply(load(TOPOLOGIES / f"{name}.toml"), root, host=host)
    assert _networks_running(host) == {"isolated", "routed"}
    engine.destroy("isolated", root, host=host)
    assert _networks_running(host) == {"routed"}
    assert "dnsmasq.stop" in host.ops()
    engine.destroy("routed", root, host=host)
    assert host.state() == before


def test_records_of_the_old_key_shape_destroy_their_own_dnsmasq(tmp_path):
    host, root = uplinked(), str(tmp_path)
    for name in ("isolated", "routed"):
        engine.apply(load(TOPOLOGIES / f"{name}.toml"), root, host=host)
        path = Path(records.path_for(root, name))
        data = json.loads(path.read_text())
        data["entries"] = [[k.replace(f"dnsmasq:{name}:", "dnsmasq:"), u] for k, u in data["entries"]]
        path.write_text(json.dumps(data))
    host.ran.clear()
    assert engine.apply(load(TOPOLOGIES / "isolated.toml"), root, host=host).actions == []  # still in sync
    engine.destroy("isolated", root, host=host)
    assert _networks_running(host) == {"routed"}
    assert "dnsmasq:lab" in records.load(root, "routed").keys()


def test_only_host_wide_facts_are_handed_over(tmp_path):
    host, root = uplinked(), str(tmp_path)
    engine.apply(load(TOPOLOGIES / "nat.toml"), root, host=host)
    engine.apply(load(TOPOLOGIES / "routed.toml"), root, host=host)
    engine.destroy("routed", root, host=host)
    assert host.sysctls["net/ipv4/ip_forward"] == "1"  # nat still needs it: handed over
    engine.destroy("nat", root, host=host)
    assert host.sysctls["net/ipv4/ip_forward"] == "0"


def test_a_bridge_recreated_with_the_same_attributes_restarts_dnsmasq(tmp_path):
    host, topo = uplinked(), load(TOPOLOGIES / "nat.toml")
    engine.apply(topo, str(tmp_path), host=host)
    host.links_["virbr0"]["index"] = 99  # deleted and made again: same name, same attributes, new index
    actions = engine.compute(topo, str(tmp_path), host=host)[2]
    assert [a.do.describe() for a in actions] == ["restart dnsmasq for default on virbr0"]
    host.ran.clear()
    engine.apply(topo, str(tmp_path), host=host)
    assert host.ops() == ["dnsmasq.start"]
    [proc] = host.dnsmasqs.values()
    assert proc["bridge"] == ["virbr0", 99]


EXTRA = """
[guests.newbie]
[[guests.newbie.nics]]
network = "default"
mac = "52:54:00:aa:bb:cc"
ip = "192.168.122.20"
"""


def _changed(tmp_path, old: str, new: str, extra: str = "") -> "Topology":
    path = tmp_path / "natlab.toml"
    path.write_text(NAT_LAB.read_text().replace(old, new) + extra)
    return load(path)


def test_a_new_guest_lease_and_record_reload_dnsmasq_with_the_same_pid(tmp_path):
    host, root = uplinked(), str(tmp_path / "state")
    engine.apply(_changed(tmp_path, "", ""), root, host=host)
    [before] = [dict(p) for p in host.dnsmasqs.values()]
    topo = _changed(tmp_path, '"files" = "192.168.122.50"', '"files" = "192.168.122.50", "backup" = "192.168.122.51"',
                    EXTRA)
    host.ran.clear()
    result = engine.apply(topo, root, host=host)
    assert [a.do.describe() for a in result.actions if a.do.op.startswith("dnsmasq")] == [
        "reload dnsmasq for default (DNS records and static leases)"]
    [after] = host.dnsmasqs.values()
    assert after["pid"] == before["pid"] and after["conf_text"] == before["conf_text"] and host.reloads == 1
    assert after["dhcp_hosts"] == "52:54:00:12:34:56,192.168.122.10,web\n52:54:00:aa:bb:cc,192.168.122.20,newbie\n"
    assert "192.168.122.51 backup backup.kvm.lan\n" in after["hosts"]
    assert "192.168.122.20 newbie newbie.kvm.lan\n" in after["hosts"]
    assert dict(records.load(root, "natlab").entries)["dnsmasq:natlab:default"]["op"] == "dnsmasq.stop"
    host.ran.clear()
    engine.apply(_changed(tmp_path, "", ""), root, host=host)  # and removing them is a reload too
    assert host.ops() == ["link.del", "dnsmasq.reload"] and host.reloads == 2
    assert next(iter(host.dnsmasqs.values()))["pid"] == before["pid"]


def test_a_failed_reload_is_rolled_back_to_the_files_before(tmp_path):
    host, root = uplinked(), str(tmp_path / "state")
    engine.apply(_changed(tmp_path, "", ""), root, host=host)
    [before] = [dict(p) for p in host.dnsmasqs.values()]
    host.fail(op="firewall.elements")  # the step after the reload (a forward added: an element delta)
    with pytest.raises(Exception):
        engine.apply(_changed(tmp_path, '"files" = "192.168.122.50"', '"files" = "192.168.122.59"',
                              "\n[[networks.default.forwards]]\nhost_port = 7000\nguest = \"web\"\n"), root, host=host)
    [now] = host.dnsmasqs.values()
    assert now == before


def test_what_dnsmasq_cannot_reload_restarts_it(tmp_path):
    host, root = uplinked(), str(tmp_path / "state")
    engine.apply(_changed(tmp_path, "", ""), root, host=host)
    topo = _changed(tmp_path, 'end = "192.168.122.199"', 'end = "192.168.122.150"')
    actions = engine.compute(topo, root, host=host)[2]
    assert [a.do.describe() for a in actions] == ["restart dnsmasq for default on virbr0"]


def test_no_step_names_an_executable(tmp_path):
    host, root = uplinked(), str(tmp_path)
    topo = load(TOPOLOGIES / "nat.toml")
    _, _, actions = engine.compute(topo, root, host=host)
    engine.apply(topo, root, host=host)
    steps = [a.do.args for a in actions] + [u["args"] for _, u in records.load(root, "nat").entries if u]
    assert not any("exe" in args for args in steps)


def test_force_with_nothing_present_names_nothing(tmp_path):
    forced = engine.forced_record(load(TOPOLOGIES / "nat.toml"), str(tmp_path), host=uplinked())
    assert forced.entries == []
    assert engine.destroy("nat", str(tmp_path), forced, host=uplinked()).actions == []


def test_force_stops_dnsmasq_files_left_without_a_process(tmp_path):
    paths = tmp_path / "nat"
    paths.mkdir()
    (paths / "dnsmasq-default.leases").write_text("")
    forced = engine.forced_record(load(TOPOLOGIES / "nat.toml"), str(tmp_path), host=uplinked())
    assert [k for k, _ in forced.entries] == ["dnsmasq:nat:default"]


def test_a_listener_on_a_port_kvmnet_already_forwards_does_not_block_repair(tmp_path):
    host, root = uplinked(), str(tmp_path / "state")
    engine.apply(load(NAT_LAB), root, host=host)
    host.listeners[("tcp", 8080)] = ["4242 (python3)"]
    host.dnsmasqs.clear()
    actions = engine.compute(load(NAT_LAB), root, host=host)[2]
    assert [a.do.op for a in actions] == ["dnsmasq.start"]
    host.listeners[("tcp", 7000)] = ["4243 (python3)"]  # a new forward onto a bound port still conflicts
    with pytest.raises(InputError) as exc:
        engine.Context(_changed(tmp_path, "", "", "\n[[networks.default.forwards]]\nhost_port = 7000\nguest = \"web\"\n"),
                       root, host=host, replace=True)
    assert "tcp port 7000 is already in use on this host by 4243 (python3)" in str(exc.value)
    assert "8080" not in str(exc.value)


def test_hosts_files_render():
    topo = load(NAT_LAB)
    net = topo.network("default")
    assert render.render_hosts(topo, net) == ("192.168.122.50 files files.kvm.lan\n"
                                              "192.168.122.10 web web.kvm.lan\n")
    assert render.render_dhcp_hosts(topo, net) == "52:54:00:12:34:56,192.168.122.10,web\n"
    conf = render.render(topo, net, {"conf": "/s/t/dnsmasq-default.conf", "pid": "/p", "leases": "/l"}, "dnsmasq",
                         "nogroup")
    assert "group=nogroup\n" in conf and "addn-hosts=/s/t/dnsmasq-default.d/hosts\n" in conf
    assert "dhcp-hostsfile=/s/t/dnsmasq-default.d/dhcp-hosts\n" in conf
    assert "dhcp-host=" not in conf and "host-record=" not in conf
