"""A real guest on a direct (macvtap) network: QEMU gets the macvtap as the descriptor `kvmnet
qemu-args` names (`-netdev tap,fd=3`, opened by the shell redirection it prints on stderr). The
uplink is a veth into a LAN namespace whose dnsmasq and web server stand in for a LAN: the guest
takes the LAN's lease, fetches a page from the LAN host, the LAN host fetches the guest's page,
the host reaches it through its own macvlan; destroy leaves the host namespace as it was.
One boot for all of it (TCG boots are slow)."""

import re
import shlex

import pytest

from helpers.lab import Lab
from helpers.natlab import HELPERS, PY, serve
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
GUEST_MAC = "52:54:00:61:00:10"
LAN_HOST = Lab.LAN_HOST
TOPOLOGY = f'''name = "dlab"
[networks.lan]
mode = "direct"
uplink = "eth0"
macvtap_mode = "bridge"
host_macvlan = "kvmhost0"
host_address = "10.61.0.250/24"
[guests.g]
[[guests.g.nics]]
network = "lan"
mac = "{GUEST_MAC}"
'''


def _fetch(ns, url, timeout=5):
    return ns.run(PY, str(HELPERS / "fetch.py"), url, str(timeout), check=False).stdout


def _lan(lab, tmp_path):
    """The uplink eth0 into a LAN namespace: dnsmasq (its files in tmp_path) and a web server."""
    lan = lab.lan_behind_uplink(tmp_path, router=True)
    serve(lan, "lan", 8080)
    return lan


def test_direct_guest_on_the_lan(make_lab, tmp_path):
    topo = tmp_path / "direct.toml"
    topo.write_text(TOPOLOGY)
    lab = make_lab(topo)
    lan = _lan(lab, tmp_path)
    lab.host.settle()
    before = lab.host.snapshot()
    lab.apply()
    res = lab.kvmnet("qemu-args", str(topo), "g")
    assert res.returncode == 0, res.stderr
    args = shlex.split(res.stdout)
    assert args[:2] == ["-netdev", "tap,id=net0,fd=3"] or args[1].startswith("tap,id=net0,fd=3,"), args
    (device,) = re.findall(r"3<>(/dev/tap\d+)", res.stderr)  # the redirection QEMU's shell must add
    # the shell the user would type: `qemu-system-x86_64 ... $(kvmnet qemu-args ...) 3<>/dev/tapN`
    (g,) = lab.boot("g", net_args={"g": args}, inner=["sh", "-c", f'exec "$@" 3<>{device}', "sh"])
    lease = g.leases()["eth0"]
    ip = lease["ip"].split("/")[0]
    assert ip.startswith("10.61.0.1") and lease["router"] == LAN_HOST, lease  # the LAN's DHCP
    assert GUEST_MAC in (tmp_path / "lan.leases").read_text()
    rc, out = g.run(f"timeout 5 wget -qO- http://{LAN_HOST}:8080/", timeout=10)
    assert rc == 0 and out == f"lan saw {ip}\n", out  # guest -> LAN host, from its own address
    assert "kvmnet guest g" in _fetch(lan, f"http://{ip}/")  # LAN host -> guest
    assert "kvmnet guest g" in _fetch(lab.host, f"http://{ip}/")  # the host, through kvmhost0
    g.stop()
    res = lab.kvmnet("destroy", str(topo))
    assert res.returncode == 0, res.stdout + res.stderr
    after = lab.host.snapshot()
    assert after == before, snapshot_diff(before, after)
