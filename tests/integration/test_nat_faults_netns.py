"""Faults on a NAT network (rollback at every step is in tests/reliability): dnsmasq that cannot
bind, dies, or whose pid is recycled; drift that `kvmnet check` reports and apply repairs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "data" / "topologies" / "nat-lab.toml"


def _steps(netns):
    res = netns.kvmnet("plan", "--json", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["steps"]


def _dnsmasq(netns):
    return [p for p in netns.processes() if p.endswith("dnsmasq")]


def test_dnsmasq_port_taken_fails_with_holder_and_rolls_back(netns):
    holder = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-c",
                               "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                               "s.bind(('0.0.0.0', 67)); print('bound', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "bound"
        before = netns.snapshot()
        res = netns.kvmnet("apply", str(TOPOLOGY))
        assert res.returncode == 1
        assert "dnsmasq for default failed to start" in res.stderr
        assert "udp port 67 is held by" in res.stderr and "python" in res.stderr, res.stderr
        assert "rolled back" in res.stderr
        after = netns.snapshot()
        assert after == before, snapshot_diff(before, after)
    finally:
        holder.kill()
        holder.wait()


def test_killed_dnsmasq_is_reported_restarted_and_keeps_leases(netns):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    leases = netns.state_dir / "natlab" / "dnsmasq-default.leases"
    leases.write_text("4000000000 52:54:00:12:34:56 192.168.122.10 web *\n")
    pid = int(_dnsmasq(netns)[0].split()[0])
    import os
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    check = netns.kvmnet("check", str(TOPOLOGY))
    assert check.returncode == 1 and "dnsmasq:natlab:default" in check.stdout, check.stdout
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    assert len(_dnsmasq(netns)) == 1
    assert netns.kvmnet("check", str(TOPOLOGY)).returncode == 0
    out = json.loads(netns.kvmnet("leases", "--json").stdout)["leases"]
    assert [(l["mac"], l["ip"]) for l in out] == [("52:54:00:12:34:56", "192.168.122.10")]
    netns.kvmnet("destroy", str(TOPOLOGY))


def test_recycled_pid_is_never_signalled(netns):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    pid_file = netns.state_dir / "natlab" / "dnsmasq-default.pid"
    real = int(pid_file.read_text())
    import os
    os.kill(real, signal.SIGKILL)
    time.sleep(0.2)
    bystander = subprocess.Popen(["ip", "netns", "exec", netns.name, "sleep", "60"])
    try:
        time.sleep(0.2)
        sleeper = [p for p in netns.processes() if p.endswith("sleep")][0].split()[0]
        pid_file.write_text(sleeper + "\n")  # the pid now belongs to someone else
        assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0
        assert bystander.poll() is None, "kvmnet signalled a process that was not its dnsmasq"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("damage,key", [
    ("nft flush chain inet kvmnet_natlab postrouting", "firewall:"),
    ("nft delete table inet kvmnet_natlab", "firewall:"),
    ("ip link set kn-natlab-web-0 nomaster", "link:kn-natlab-web-0"),
    ("ip link del virbr0", "link:virbr0"),
    ("sysctl -qw net.ipv4.ip_forward=0", "sysctl:net/ipv4/ip_forward"),
])
def test_check_detects_drift_and_apply_repairs(netns, damage, key):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    assert netns.kvmnet("check", str(TOPOLOGY)).returncode == 0
    netns.sh(damage)
    check = netns.kvmnet("check", str(TOPOLOGY))
    assert check.returncode == 1 and key in check.stdout, check.stdout
    res = netns.kvmnet("apply", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    assert netns.kvmnet("check", str(TOPOLOGY)).returncode == 0
    assert len(_dnsmasq(netns)) == 1
    netns.kvmnet("destroy", str(TOPOLOGY))


@pytest.mark.parametrize("change, op", [
    (lambda t: t + '\n[[networks.default.forwards]]\nhost_port = 2222\nguest = "web"\nguest_port = 22\n',
     "firewall.elements"),  # one more map element
    (lambda t: t.replace('stp = false', 'stp = false\nspoof_protection = true'), "firewall.apply"),  # new rules
], ids=["element-delta", "table-reload"])
def test_failed_change_restores_the_previous_ruleset(netns, tmp_path, change, op):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    ruleset = netns.run("nft", "list", "ruleset").stdout
    changed = tmp_path / "natlab.toml"
    changed.write_text(change(TOPOLOGY.read_text()))
    steps = json.loads(netns.kvmnet("plan", "--json", "--replace", str(changed)).stdout)["steps"]
    assert [s["do"]["op"] for s in steps] == [op]
    res = netns.kvmnet("apply", "--replace", str(changed), env={"KVMNET_FAULT_AT": "0+"})  # fail right after the new rules loaded
    assert res.returncode == 1 and "rolled back" in res.stderr
    assert netns.run("nft", "list", "ruleset").stdout == ruleset
    assert netns.kvmnet("check", str(TOPOLOGY)).returncode == 0
    netns.kvmnet("destroy", str(TOPOLOGY))


def test_tftp_from_the_gateway(netns):
    """The seed's TFTPROOT/BOOTP, served by kvmnet's dnsmasq on the bridge only."""
    from helpers.dirs import readable_dir
    from helpers.natlab import HELPERS
    from helpers.netns import Netns
    with readable_dir() as tmp_path:
        root = tmp_path / "tftp"
        root.mkdir()
        (root / "boot.txt").write_text("pxe payload\n")
        topo = tmp_path / "tftp.toml"
        topo.write_text(f'[networks.pxe]\nmode = "isolated"\nbridge = "kvmpxe0"\nsubnet = "10.66.0.0/24"\nstp = false\n'
                        f'tftp_root = "{root}"\nbootfile = "boot.txt"\n[networks.pxe.dhcp]\nstart = "10.66.0.100"\nend = "10.66.0.150"\n')
        assert netns.kvmnet("apply", str(topo)).returncode == 0
        client = Netns("kn-c")
        try:
            netns.sh(f"ip link add port0 type veth peer name eth0 netns {client.name} && ip link set port0 master kvmpxe0 up")
            client.sh("ip link set eth0 up")
            lease = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "8", "-T", "1",
                               "-s", str(HELPERS / "udhcpc.script"), check=False, timeout=30).stdout
            assert "LEASE ip=10.66.0.1" in lease, lease
            got = client.sh(f"cd {tmp_path} && busybox tftp -g -r boot.txt -l got.txt 10.66.0.1 && cat got.txt", check=False)
            assert got.stdout == "pxe payload\n", got.stderr
            assert "dhcp-boot=boot.txt" in (netns.state_dir / "tftp" / "dnsmasq-pxe.conf").read_text()
        finally:
            client.delete()
            netns.kvmnet("destroy", str(topo))


def test_commands_that_change_the_host_say_they_need_root(tmp_path):
    topo = Path(__file__).resolve().parents[2] / "topologies" / "isolated.toml"
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "kvmnet.cli",
                          "--state-dir", str(tmp_path), "apply", str(topo)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 1 and "needs root" in res.stderr and "sudo" in res.stderr, res.stderr
