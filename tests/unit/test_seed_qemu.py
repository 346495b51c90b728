"""The seed's remaining QEMU options without root: multi-queue taps, tap tuning, `-nic none`,
packet capture, qemu-bridge-helper and VDE, against the fake host and the renderer."""

from __future__ import annotations

import json
import textwrap

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine, naming
from kvmnet.engine.steps import Step
from kvmnet.engine.stepschema import Where, check_step
from kvmnet.errors import InputError
from kvmnet.render.qemu import HostOffers, guest_args
from kvmnet.render.qemu_tuning import guest_wide

NAT = """\
[networks.default]
mode = "nat"
bridge = "virbr0"
subnet = "192.168.122.0/24"
"""


def load(tmp_path, guests: str, name: str = "seedq"):
    path = tmp_path / f"{name}.toml"
    path.write_text(NAT + textwrap.dedent(guests))
    return config.load(str(path))


def test_a_guest_with_queues_gets_multi_queue_taps_only_for_virtio(tmp_path):
    topo = load(tmp_path, """\
        [guests.mq]
        queues = 2
        [[guests.mq.nics]]
        network = "default"
        [[guests.mq.nics]]
        network = "default"
        model = "e1000"
        [guests.one]
        queues = 1
        [[guests.one.nics]]
        network = "default"
        """)
    host = FakeHost()
    engine.apply(topo, str(tmp_path / "state"), host=host)
    taps = {s.args["name"]: s.args.get("multi_queue", False) for s in host.ran if s.op == "tap.add"}
    assert taps == {"kn-seedq-mq-0": True, "kn-seedq-mq-1": False, "kn-seedq-one-0": False}
    assert host.links_["kn-seedq-mq-0"]["multi_queue"] is True


def test_multi_queue_tap_step_in_words_as_a_command_and_in_the_schema():
    step = Step("tap.add", {"name": "kn-seedq-mq-0", "master": "virbr0", "mac": None, "mtu": None, "group": 7,
                            "multi_queue": True})
    assert step.describe() == "create multi-queue tap kn-seedq-mq-0 on bridge virbr0"
    assert "ip tuntap add dev kn-seedq-mq-0 mode tap vnet_hdr multi_queue &&" in step.command()
    check_step(step.to_json(), Where("seedq", "/run/kvmnet/seedq"))  # no SchemaError


def test_a_guest_without_nics_gets_nic_none(tmp_path):
    from click.testing import CliRunner
    from kvmnet.cli import main
    path = tmp_path / "quiet.toml"
    path.write_text('[guests.quiet]\nmemory = 64\n')
    res = CliRunner().invoke(main, ["qemu-args", str(path), "quiet"])
    assert (res.exit_code, res.output) == (0, "-nic none\n")
    res = CliRunner().invoke(main, ["qemu-args", "--json", str(path), "quiet"])
    assert json.loads(res.output)["guest_args"] == ["-nic", "none"]
    topo = config.load(str(path))
    assert guest_wide(topo.guest("quiet")) == ["-nic", "none"]
    assert guest_wide(load(tmp_path, '[guests.g]\n[[guests.g.nics]]\nnetwork = "default"\n').guest("g")) == []


TUNED = """\
    [networks.slirp]
    mode = "user"
    [guests.t]
    queues = 2
    [[guests.t.nics]]
    network = "default"
    mac = "52:54:00:00:00:01"
    sndbuf = 1048576
    vnet_hdr = true
    vhost = "off"
    vectors = 8
    [[guests.t.nics]]
    network = "default"
    mac = "52:54:00:00:00:02"
    model = "e1000"
    sndbuf = 0
    [[guests.t.nics]]
    network = "slirp"
    mac = "52:54:00:00:00:03"
    capture = "/tmp/t,3.pcap"
    [guests.cap]
    [[guests.cap.nics]]
    network = "default"
    mac = "52:54:00:00:00:04"
    capture = "/var/tmp/cap.pcap"
    """
NO_SCRIPTS = "script=no,downscript=no"


def test_tuning_renders_in_the_netdev_syntax(tmp_path):
    topo = load(tmp_path, TUNED)
    vhost = HostOffers(vhost_net=True)
    assert guest_args(topo, topo.guest("t"), "netdev", False, vhost) == [
        ["-netdev", f"tap,id=net0,ifname=kn-seedq-t-0,{NO_SCRIPTS},vhost=off,queues=2,sndbuf=1048576,vnet_hdr=on",
         "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,mq=on,vectors=8"],
        ["-netdev", f"tap,id=net1,ifname=kn-seedq-t-1,{NO_SCRIPTS},sndbuf=0",
         "-device", "e1000,netdev=net1,mac=52:54:00:00:00:02"],
        ["-netdev", "user,id=net2,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15",
         "-device", "virtio-net-pci,netdev=net2,mac=52:54:00:00:00:03",
         "-object", "filter-dump,id=capture2,netdev=net2,file=/tmp/t,,3.pcap"]]
    # a captured tap: no vhost (frames would bypass the filter), no vnet headers in the pcap
    assert guest_args(topo, topo.guest("cap"), "netdev", False, vhost) == [
        ["-netdev", f"tap,id=net0,ifname=kn-seedq-cap-0,{NO_SCRIPTS},vhost=off,vnet_hdr=off",
         "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:04",
         "-object", "filter-dump,id=capture0,netdev=net0,file=/var/tmp/cap.pcap"]]


def test_tuning_renders_in_the_legacy_syntax(tmp_path):
    topo = load(tmp_path, """\
        [guests.old]
        [[guests.old.nics]]
        network = "default"
        mac = "52:54:00:00:00:05"
        sndbuf = 65536
        vnet_hdr = false
        vhost = "on"
        vectors = 4
        """)
    assert guest_args(topo, topo.guest("old"), "legacy") == [
        ["-net", "nic,model=virtio,macaddr=52:54:00:00:00:05,vectors=4",
         "-net", f"tap,ifname=kn-seedq-old-0,{NO_SCRIPTS},vhost=on,sndbuf=65536,vnet_hdr=off"]]
    cap = load(tmp_path, TUNED)
    with pytest.raises(InputError, match=r"guests.cap.nics\[0\].capture: QEMU dropped -net dump"):
        guest_args(cap, cap.guest("cap"), "legacy")


def _problems(tmp_path, guests: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        load(tmp_path, guests, "bad")
    return [f"{p.path}: {p.reason}" for p in exc.value.problems]


def test_tuning_is_validated(tmp_path):
    assert _problems(tmp_path, """\
        [networks.slirp]
        mode = "user"
        [guests.b]
        [[guests.b.nics]]
        network = "default"
        model = "e1000"
        sndbuf = -1
        vhost = "on"
        vectors = 3
        [[guests.b.nics]]
        network = "default"
        vhost = "yes"
        vectors = 4096
        vnet_hdr = "off"
        [[guests.b.nics]]
        network = "default"
        capture = "/tmp/x.pcap"
        vnet_hdr = true
        vhost = "on"
        [[guests.b.nics]]
        network = "slirp"
        sndbuf = 4096
        vnet_hdr = false
        vhost = "off"
        capture = " "
        """) == [  # in line order
        "guests.b.nics[0].sndbuf: -1 is outside 0-2147483647",
        "guests.b.nics[0].vhost: vhost-net serves virtio NICs only (model is e1000)",
        "guests.b.nics[0].vectors: MSI-X vectors are a virtio-net-pci property (model is e1000)",
        "guests.b.nics[1].vhost: 'yes' is not one of auto, on, off",
        "guests.b.nics[1].vectors: 4096 is outside 0-2048",
        "guests.b.nics[1].vnet_hdr: must be true or false, not a string",
        "guests.b.nics[2].vnet_hdr: a captured NIC needs vnet_hdr = false: QEMU would write a virtio-net "
        "header before every frame, which no pcap reader understands",
        "guests.b.nics[2].vhost: a captured NIC needs vhost off: with vhost-net the kernel moves its frames "
        "and QEMU's filter-dump never sees them",
        "guests.b.nics[3].sndbuf: sndbuf is an option of tap NICs; networks.slirp is user (QEMU's -netdev user has no sndbuf)",
        "guests.b.nics[3].vnet_hdr: vnet_hdr is an option of tap NICs; networks.slirp is user (QEMU's -netdev user has no vnet_hdr)",
        "guests.b.nics[3].vhost: vhost is an option of tap NICs; networks.slirp is user (QEMU's -netdev user has no vhost)",
        "guests.b.nics[3].capture: must be a file name (the pcap QEMU writes)",
    ]


def test_run_refuses_vhost_on_without_vhost_net_and_a_capture_without_its_directory(tmp_path, monkeypatch):
    from kvmnet.engine import qemu_command
    from kvmnet.host import qemu
    topo = load(tmp_path, """\
        [guests.v]
        [[guests.v.nics]]
        network = "default"
        vhost = "on"
        [guests.c]
        [[guests.c.nics]]
        network = "default"
        capture = "/nonexistent-dir/c.pcap"
        """)
    monkeypatch.setattr(qemu, "vhost_net", lambda: False)
    with pytest.raises(InputError, match=r"guests.v.nics\[0\].vhost: on, but this host has no /dev/vhost-net"):
        qemu_command.check_tuning(topo, "v")
    with pytest.raises(InputError, match=r"guests.c.nics\[0\].capture: directory /nonexistent-dir does not exist"):
        qemu_command.check_tuning(topo, "c")
    monkeypatch.setattr(qemu, "vhost_net", lambda: True)
    qemu_command.check_tuning(topo, "v")  # no error


HELPER_NAT = """\
    [networks.lab]
    mode = "isolated"
    bridge = "kvmlab0"
    subnet = "10.66.0.0/24"
    allow_unprivileged = true
    [guests.u]
    [[guests.u.nics]]
    network = "default"
    mac = "52:54:00:00:00:0a"
    [[guests.u.nics]]
    network = "lab"
    mac = "52:54:00:00:00:0b"
    """


def test_allow_unprivileged_is_a_planned_fact_undone_on_destroy(tmp_path):
    topo = load(tmp_path, HELPER_NAT)
    host = FakeHost()
    engine.apply(topo, str(tmp_path / "state"), host=host)
    (added,) = [s for s in host.ran if s.op.startswith("qemuacl")]
    assert added.args == {"conf_dir": "/etc/qemu", "bridge": "kvmlab0", "topology": "seedq"}
    assert added.describe() == ("let qemu-bridge-helper attach unprivileged guests to kvmlab0 "
                                "(/etc/qemu/kvmnet.conf, included from bridge.conf)")
    assert host.acl == {"kvmlab0": "seedq"}
    assert engine.compute(topo, str(tmp_path / "state"), host=host)[2] == []  # in sync
    engine.destroy(topo.name, str(tmp_path / "state"), host=host)
    assert host.acl == {}


def test_qemu_args_helper_renders_netdev_bridge(tmp_path):
    topo = load(tmp_path, HELPER_NAT)
    helper = HostOffers(bridge_helper="/usr/lib/qemu/qemu-bridge-helper")
    both = load(tmp_path, 'allow_unprivileged = true\n' + HELPER_NAT, "both")
    assert guest_args(both, both.guest("u"), "netdev", False, helper)[1] == [
        "-netdev", "bridge,id=net1,br=kvmlab0,helper=/usr/lib/qemu/qemu-bridge-helper",
        "-device", "virtio-net-pci,netdev=net1,mac=52:54:00:00:00:0b"]
    with pytest.raises(InputError, match=r"^guests.u.nics\[0\]: networks.default does not set allow_unprivileged = true, "
                                         r"so qemu-bridge-helper would refuse bridge virbr0$"):
        guest_args(topo, topo.guest("u"), "netdev", False, helper)
    legacy = load(tmp_path, HELPER_NAT.replace('network = "default"', 'network = "lab"').replace(
        '[[guests.u.nics]]\n    network = "lab"\n    mac = "52:54:00:00:00:0b"\n', ""))
    assert guest_args(legacy, legacy.guest("u"), "legacy", False, helper) == [[
        "-net", "nic,model=virtio,macaddr=52:54:00:00:00:0a",
        "-net", "bridge,br=kvmlab0,helper=/usr/lib/qemu/qemu-bridge-helper"]]


def test_the_acl_files_on_disk(tmp_path):
    """kvmnet adds its include to a bridge.conf it finds and never touches the other lines;
    a bridge.conf it created goes with its last allow line."""
    from kvmnet.host import qemu_acl
    conf = tmp_path / "qemu"
    qemu_acl.add(str(conf), "kvmlab0", "seedq")
    qemu_acl.add(str(conf), "virbr1", "other")
    assert (conf / "kvmnet.conf").read_text() == ("# kvmnet topology seedq\nallow kvmlab0\n"
                                                  "# kvmnet topology other\nallow virbr1\n")
    assert (conf / "bridge.conf").read_text().endswith(f"\ninclude {conf}/kvmnet.conf\n")
    assert oct((conf / "kvmnet.conf").stat().st_mode & 0o777) == "0o644"
    assert qemu_acl.read(str(conf)) == {"kvmlab0": "seedq", "virbr1": "other"}
    qemu_acl.remove(str(conf), "kvmlab0", "other")  # not that topology's line: kept
    assert qemu_acl.read(str(conf)) == {"kvmlab0": "seedq", "virbr1": "other"}
    qemu_acl.remove(str(conf), "kvmlab0", "seedq")
    qemu_acl.remove(str(conf), "virbr1", "other")
    assert sorted(p.name for p in conf.iterdir()) == []
    (conf / "bridge.conf").write_text("allow br9\n# mine\n")
    qemu_acl.add(str(conf), "kvmlab0", "seedq")
    assert (conf / "bridge.conf").read_text() == f"allow br9\n# mine\ninclude {conf}/kvmnet.conf\n"
    qemu_acl.remove(str(conf), "kvmlab0", "seedq")
    assert (conf / "bridge.conf").read_text() == "allow br9\n# mine\n"
    assert not (conf / "kvmnet.conf").exists()


VDE = """\
    [networks.sw]
    mode = "vde"
    bridge = "virbr0"
    [networks.solo]
    mode = "vde"
    [guests.a]
    [[guests.a.nics]]
    network = "sw"
    mac = "52:54:00:00:00:21"
    [[guests.a.nics]]
    network = "solo"
    mac = "52:54:00:00:00:22"
    """


def test_vde_networks_run_supervised_switches(tmp_path):
    topo = load(tmp_path, VDE)
    host, state = FakeHost(), str(tmp_path / "state")
    engine.apply(topo, state, host=host)
    started = [s for s in host.ran if s.op == "vde.start"]
    tap = naming.vde_tap("seedq", "sw")
    assert [s.describe() for s in started] == [
        f"start vde_switch for sw, joined to bridge virbr0 through tap {tap}", "start vde_switch for solo"]
    assert started[0].args["ctl"] == f"{state}/seedq/vde-sw.ctl"
    assert host.links_[tap]["master"] == "virbr0"
    assert engine.compute(topo, state, host=host)[2] == []
    host.links_[tap]["master"] = None  # the switch's tap fell off the bridge: re-joined
    (repair,) = engine.compute(topo, state, host=host)[2]
    assert (repair.kind, repair.do.op) == ("modify", "vde.start")
    engine.destroy("seedq", state, host=host)  # the record (schema-checked on load) stops both
    assert host.vdes == set() and tap not in host.links_
    offers = HostOffers(state_dir=f"{state}/seedq")
    assert guest_args(topo, topo.guest("a"), "netdev", False, offers)[0] == [
        "-netdev", f"vde,id=net0,sock={state}/seedq/vde-sw.ctl", "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:21"]


def test_a_vde_network_joins_only_a_bridge_of_the_file(tmp_path):
    assert _problems(tmp_path, """\
        [networks.sw]
        mode = "vde"
        bridge = "br9"
        """) == ["networks.sw.bridge: br9 is not the bridge of a network in this file (bridges: virbr0)"]


def test_destroy_force_stops_switches_and_removes_acl_lines_without_a_record(tmp_path):
    from kvmnet.engine.forced import forced_record
    host, state = FakeHost(), str(tmp_path / "state")
    both = load(tmp_path, 'allow_unprivileged = true\n' + VDE, "forced")
    engine.apply(both, state, host=host)
    assert host.acl and host.vdes
    rec = forced_record(both, state, host=host)
    engine.destroy("forced", state, rec, host=host)
    assert host.acl == {} and host.vdes == set()
