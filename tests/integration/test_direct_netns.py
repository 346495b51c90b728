"""A direct network on a veth "uplink" into a LAN namespace that runs a DHCP server: the guest
is a client namespace behind kvmnet's macvtap (tests/helpers/taprelay.py holds /dev/tapN open
in QEMU's place, exactly as `kvmnet run` hands it over). It gets a lease from the LAN, reaches a
LAN host, and the host reaches it through its own macvlan (never through the uplink itself);
destroy leaves the host namespace as it was."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.netns import Netns, snapshot_diff
from helpers.throughput import measure

pytestmark = pytest.mark.root
HELPERS = Path(__file__).resolve().parents[1] / "helpers"
GUEST_MAC = "52:54:00:60:00:10"
TOPOLOGY = f'''name = "direct"
[networks.lan]
mode = "direct"
uplink = "eth0"
macvtap_mode = "bridge"
host_macvlan = "kvmhost0"
host_address = "10.60.0.250/24"
[[guests.g.nics]]
network = "lan"
mac = "{GUEST_MAC}"
'''


@pytest.fixture
def lab(tmp_path):
    host, lan, guest = Netns("kn-dh"), Netns("kn-dl"), Netns("kn-dg")
    relay = None
    try:
        host.sh(f"ip link add eth0 type veth peer name lan0 netns {lan.name} && ip link set eth0 up")
        lan.sh("ip addr add 10.60.0.1/24 dev lan0 && ip link set lan0 up")
        leases = tmp_path / "leases"
        tmp_path.chmod(0o777)
        lan.run("dnsmasq", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces",
                "--dhcp-range=10.60.0.100,10.60.0.150,1h", f"--dhcp-leasefile={leases}",
                f"--pid-file={tmp_path / 'dnsmasq.pid'}")
        file = tmp_path / "direct.toml"
        file.write_text(TOPOLOGY)
        yield host, lan, guest, file, tmp_path
    finally:
        for ns in (guest, lan, host):
            ns.delete()


def _relay(host: Netns, guest: Netns, device: str) -> subprocess.Popen:
    host.sh(f"ip link add rl0 type veth peer name eth0 netns {guest.name} && "
            "sysctl -qw net.ipv6.conf.rl0.disable_ipv6=1 && ip link set rl0 up")
    guest.sh(f"ip link set eth0 address {GUEST_MAC} up")
    proc = subprocess.Popen(["ip", "netns", "exec", host.name, sys.executable, str(HELPERS / "taprelay.py"),
                             device, "rl0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_macvtap_guest_gets_a_lan_lease_reaches_the_lan_and_the_hosts_macvlan(lab):
    host, lan, guest, file, tmp = lab
    host.settle()  # the uplink's link-local address
    before = host.snapshot()
    res = host.kvmnet("apply", str(file))
    assert res.returncode == 0, res.stdout + res.stderr
    link = host.run("ip", "-d", "-j", "link", "show", "kn-direct-g-0").stdout
    assert '"info_kind":"macvtap"' in link and GUEST_MAC in link and '"mode":"bridge"' in link
    args = host.kvmnet("qemu-args", str(file), "g")
    assert args.stdout.strip().startswith("-netdev tap,id=net0,fd=3 ")
    device = re.search(r"3<>(/dev/tap\d+)", args.stderr)[1]
    relay = _relay(host, guest, device)
    try:
        got = guest.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "8", "-T", "1",
                        "-s", str(HELPERS / "udhcpc.script"), check=False, timeout=30)
        lease = re.search(r"LEASE ip=(\S+)", got.stdout)
        assert lease, got.stdout + got.stderr
        ip = lease[1]
        assert ip.startswith("10.60.0.1") and GUEST_MAC in (tmp / "leases").read_text()
        assert measure(lan.name, guest.name, "10.60.0.1", 5001, 1 << 20) > 1  # guest -> LAN host
        assert measure(guest.name, lan.name, ip, 5002, 1 << 20) > 1  # LAN host -> guest
        assert measure(guest.name, host.name, ip, 5003, 1 << 20) > 1  # host -> guest, via kvmhost0
    finally:
        relay.kill()
        relay.wait()
        host.sh("ip link del rl0")
    res = host.kvmnet("destroy", str(file))
    assert res.returncode == 0, res.stdout + res.stderr
    after = host.snapshot()
    assert after == before, snapshot_diff(before, after)
