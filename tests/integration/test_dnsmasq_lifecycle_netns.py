"""kvmnet's dnsmasq across its whole life, in namespaces: never leaked (two topologies with a
network of the same name, a lost state dir or pid file), restarted when its bridge is
re-created (its DHCP socket names the old bridge), reloaded without a restart when guests,
static leases or DNS records change, and never blocked from repair by a listener on a port
kvmnet already forwards."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.natlab import NatLab
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "topologies"
NAT_LAB = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"


def _dnsmasqs(ns) -> list[str]:
    return [p for p in ns.processes() if p.endswith(" dnsmasq")]


def test_destroy_stops_its_own_dnsmasq_when_another_topology_has_a_network_of_the_same_name(netns):
    before = netns.snapshot()
    for name in ("isolated", "routed"):  # both name their network `lab`
        res = netns.kvmnet("apply", str(TOPOLOGIES / f"{name}.toml"))
        assert res.returncode == 0, res.stdout + res.stderr
    assert len(_dnsmasqs(netns)) == 2
    res = netns.kvmnet("destroy", str(TOPOLOGIES / "isolated.toml"))
    assert res.returncode == 0, res.stderr
    assert "stop dnsmasq for lab" in res.stdout
    assert not (netns.state_dir / "isolated").exists()
    assert len(_dnsmasqs(netns)) == 1
    assert netns.kvmnet("check", str(TOPOLOGIES / "routed.toml")).returncode == 0
    assert netns.kvmnet("destroy", str(TOPOLOGIES / "routed.toml")).returncode == 0
    after = netns.snapshot()
    assert after == before, snapshot_diff(before, after)


@pytest.mark.parametrize("lost", ["state dir", "pid file"])
def test_a_lost_state_dir_or_pid_file_does_not_orphan_dnsmasq(lost, netns):
    nat = str(TOPOLOGIES / "nat.toml")
    before = netns.snapshot()
    assert netns.kvmnet("apply", nat).returncode == 0
    [running] = _dnsmasqs(netns)
    if lost == "state dir":
        shutil.rmtree(netns.state_dir)
        res = netns.kvmnet("destroy", "--force", nat)
    else:
        (netns.state_dir / "nat" / "dnsmasq-default.pid").unlink()
        assert netns.kvmnet("check", nat).returncode == 0  # found by binary + --conf-file
        res = netns.kvmnet("destroy", nat)
    assert res.returncode == 0, res.stderr
    assert "stop dnsmasq for default" in res.stdout
    assert _dnsmasqs(netns) == []
    res = netns.kvmnet("apply", nat)  # port 67 is free again
    assert res.returncode == 0, res.stderr
    assert netns.kvmnet("destroy", nat).returncode == 0
    after = netns.snapshot()
    if lost == "state dir":  # ip_forward's original value went with the record: left on
        before.pop("sysctls"), after.pop("sysctls")
    assert after == before, snapshot_diff(before, after)


def test_destroy_force_with_nothing_present_removes_nothing(netns):
    res = netns.kvmnet("destroy", "--force", str(TOPOLOGIES / "nat.toml"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"nat: nothing of {TOPOLOGIES / 'nat.toml'}'s was on this host\n"


def test_a_foreign_dnsmasq_is_never_taken_for_kvmnets(netns, tmp_path):
    """Same binary, another --conf-file: destroy --force leaves it running."""
    conf = tmp_path / "foreign.conf"
    conf.write_text(f"port=5353\nno-resolv\nno-hosts\npid-file={tmp_path}/foreign.pid\nuser=nobody\n")
    netns.run("dnsmasq", f"--conf-file={conf}")
    assert netns.kvmnet("apply", str(TOPOLOGIES / "nat.toml")).returncode == 0
    shutil.rmtree(netns.state_dir)
    assert netns.kvmnet("destroy", "--force", str(TOPOLOGIES / "nat.toml")).returncode == 0
    [left] = _dnsmasqs(netns)
    assert Path(f"/proc/{left.split()[0]}/cmdline").read_bytes().split(b"\0")[1] == f"--conf-file={conf}".encode()


def test_an_executable_named_in_a_record_is_never_run(netns, tmp_path):
    """Records written before kvmnet stopped storing `exe`: the binary is resolved at run time."""
    planted, script = tmp_path / "ran", tmp_path / "evil"
    script.write_text(f"#!/bin/sh\ntouch {planted}\n")
    script.chmod(0o755)
    nat = str(TOPOLOGIES / "nat.toml")
    assert netns.kvmnet("apply", nat).returncode == 0
    state = netns.state_dir / "nat" / "state.json"
    data = json.loads(state.read_text())
    conf = str(netns.state_dir / "nat" / "dnsmasq-default.conf")
    start = {"op": "dnsmasq.start", "args": {
        "network": "default", "bridge": "virbr0", "conf": conf, "conf_text": Path(conf).read_text(),
        "pid_file": conf[:-5] + ".pid", "leases": conf[:-5] + ".leases", "exe": str(script), "previous": None}}
    data["entries"].append(["dnsmasq:default", start])  # an old record's restart-as-before undo
    state.write_text(json.dumps(data))
    netns.kvmnet("destroy", nat)
    assert not planted.exists()
    assert netns.kvmnet("destroy", "--force", nat).returncode == 0
    assert _dnsmasqs(netns) == []


@pytest.fixture
def lab():
    lab = NatLab(NAT_LAB)
    try:
        yield lab
    finally:
        lab.close()


def test_a_recreated_bridge_gets_dhcp_again(lab):
    lab.apply()
    lab.host.sh("ip link del virbr0")
    res = lab.kvmnet("check", str(NAT_LAB))
    assert res.returncode == 1 and "restart dnsmasq for default on virbr0" in res.stdout, res.stdout
    res = lab.apply()
    assert "restart dnsmasq for default on virbr0" in res.stdout
    assert lab.add_client("web", "52:54:00:12:34:56").lease["ip"] == "192.168.122.10"


def _pid(lab) -> int:
    return int((lab.host.state_dir / "natlab" / "dnsmasq-default.pid").read_text())


EXTRA = """
[guests.newbie]
[[guests.newbie.nics]]
network = "default"
mac = "52:54:00:aa:bb:cc"
ip = "192.168.122.20"
"""


def test_guests_leases_and_records_reload_dnsmasq_without_a_restart(lab, tmp_path):
    topo = tmp_path / "natlab.toml"
    topo.write_text(NAT_LAB.read_text())
    lab.topology = topo
    lab.apply()
    other = lab.add_client("other", "52:54:00:00:00:77", serve=False)
    pid = _pid(lab)
    text = topo.read_text().replace('dns_hosts = { "files" = "192.168.122.50" }',
                                    'dns_hosts = { "files" = "192.168.122.50", "backup" = "192.168.122.51" }')
    topo.write_text(text + EXTRA)
    plan = lab.kvmnet("plan", str(topo)).stdout
    assert "reload dnsmasq for default" in plan and "restart dnsmasq" not in plan, plan
    res = lab.apply()
    assert "reload dnsmasq for default (DNS records and static leases)" in res.stdout
    assert _pid(lab) == pid
    for name, ip in (("backup.kvm.lan", "192.168.122.51"), ("newbie.kvm.lan", "192.168.122.20"),
                     ("files.kvm.lan", "192.168.122.50")):
        out = other.ns.run("busybox", "nslookup", name, "192.168.122.1", check=False).stdout
        assert ip in out, out
    assert lab.add_client("newbie", "52:54:00:aa:bb:cc", serve=False).lease["ip"] == "192.168.122.20"
    again = lab.add_client("other", "52:54:00:00:00:77", serve=False)  # the running client's lease holds
    assert again.lease["ip"] == other.lease["ip"]
    topo.write_text(text.replace("stp = false", "stp = false\nmtu = 1400"))  # an option: a restart
    assert "restart dnsmasq for default on virbr0" in lab.kvmnet("plan", str(topo)).stdout


def test_a_listener_on_a_forwarded_port_does_not_block_repair(lab):
    lab.apply()
    server = subprocess.Popen(["ip", "netns", "exec", lab.host.name, sys.executable, "-m", "http.server", "8080",
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while ":1F90" not in lab.host.run("cat", "/proc/net/tcp").stdout:
            assert time.monotonic() < deadline, "http.server did not start"
            time.sleep(0.05)
        lab.host.sh(f"kill {_pid(lab)}")
        time.sleep(0.2)
        res = lab.kvmnet("check", str(NAT_LAB))
        assert res.returncode == 1 and "start dnsmasq for default on virbr0" in res.stdout, res.stdout + res.stderr
        status = lab.kvmnet("status", str(NAT_LAB))
        assert status.returncode == 0 and "drifted: start dnsmasq" in status.stdout, status.stdout + status.stderr
        res = lab.apply()
        assert "start dnsmasq for default" in res.stdout
    finally:
        server.kill()
        server.wait()
