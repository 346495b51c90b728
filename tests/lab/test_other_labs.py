"""Scenarios 3-6 of the labs: bridge mode with a LAN's own DHCP server, an isolated network,
QEMU user-mode networking, and socket links between guests."""

import textwrap

import pytest

from helpers.natlab import HELPERS, PY
from helpers.netns import ROOT, snapshot_diff

pytestmark = pytest.mark.root
TOPO = ROOT / "topologies"


def _fetch(ns, url, timeout=5):
    return ns.run(PY, str(HELPERS / "fetch.py"), url, str(timeout), check=False).stdout


def test_bridge_mode_guest_on_the_lan(make_lab, tmp_path):
    lab = make_lab(TOPO / "bridge.toml")
    lan = lab._ns("kn-lan")
    lab.host.sh(f"ip link add eth0 type veth peer name eth0 netns {lan.name} && "
                "ip addr add 10.9.0.2/24 dev eth0 && ip link set eth0 up && ip route add 10.9.0.0/16 via 10.9.0.1 dev eth0")
    lan.sh("ip addr add 10.9.0.1/24 dev eth0 && ip link set eth0 up")
    lan.run("dnsmasq", "--conf-file=/dev/null", "--interface=eth0", "--bind-interfaces", "--no-ping",
            f"--pid-file={tmp_path}/lan.pid", f"--dhcp-leasefile={tmp_path}/lan.leases",
            "--dhcp-range=10.9.0.100,10.9.0.199,1h", "--dhcp-option=option:router,10.9.0.1")
    lab.host.settle()
    before = lab.host.snapshot()
    lab.apply()
    addrs = lab.host.run("ip", "-br", "addr", "show", "br0").stdout
    assert "10.9.0.2/24" in addrs and "10.9.0.0/16 via 10.9.0.1 dev br0" in lab.host.run("ip", "route").stdout
    (vm,) = lab.boot("vm1")
    ip = vm.leases()["eth0"]["ip"].split("/")[0]
    assert ip.startswith("10.9.0.1") and vm.leases()["eth0"]["router"] == "10.9.0.1"  # the LAN's DHCP
    assert "kvmnet guest vm1" in _fetch(lan, f"http://{ip}/")
    vm.check("ping -c1 -W2 10.9.0.2")  # and the host, on its old address, now on br0
    vm.stop()
    assert lab.kvmnet("destroy", str(TOPO / "bridge.toml")).returncode == 0
    lab.host.settle()  # IPv6 back on the uplink (off while it was a port): its link-local's DAD
    after = lab.host.snapshot()
    assert after == before, snapshot_diff(before, after)


def test_isolated_network(make_lab):
    lab = make_lab(TOPO / "isolated.toml")
    lab.apply()
    a, b = lab.boot("a", "b")
    assert a.leases()["eth0"]["ip"] == "10.77.0.10/24"
    b_ip = b.leases()["eth0"]["ip"].split("/")[0]
    assert b_ip.startswith("10.77.0.1")
    a.check(f"ping -c1 -W2 {b_ip}")
    b.check("ping -c1 -W2 10.77.0.10")
    a.check("ping -c1 -W2 10.77.0.1")  # the gateway (DHCP/DNS server) answers
    # never the wan, even with a route
    a.run("ip route add default via 10.77.0.1")
    rc, _ = a.run("timeout 3 wget -qO- http://10.0.0.1/", timeout=10)
    assert rc != 0


def _user_topology(tmp_path, restrict: bool):
    tftp = tmp_path / "tftp"
    tftp.mkdir(exist_ok=True)
    (tftp / "hello.txt").write_text("hello over tftp\n")
    path = tmp_path / f"user{'r' if restrict else ''}.toml"
    path.write_text(textwrap.dedent(f"""\
        [networks.slirp]
        mode = "user"
        restrict = {'true' if restrict else 'false'}
        tftp = "{tftp}"
        [[networks.slirp.hostfwd]]
        host_addr = "127.0.0.1"
        host_port = 5080
        guest_port = 80
        [guests.dev]
        [[guests.dev.nics]]
        network = "slirp"
        """))
    return path


@pytest.mark.parametrize("restrict", [False, True])
def test_user_mode(make_lab, tmp_path, restrict):
    lab = make_lab(_user_topology(tmp_path, restrict))
    lab.serve(lab.host, "hostside", 8000)  # a service on the host's loopback, for the guest to reach
    (dev,) = lab.boot("dev")
    assert dev.leases()["eth0"]["ip"] == "10.0.2.15/24"
    assert "kvmnet guest dev" in _fetch(lab.host, "http://127.0.0.1:5080/")  # hostfwd works either way
    rc, out = dev.run("timeout 5 wget -qO- http://10.0.2.2:8000/", timeout=10)
    if restrict:
        assert rc != 0, out  # restrict=on: no way out
    else:
        assert rc == 0 and out.startswith("hostside saw"), out
        assert dev.check("cd /tmp && tftp -g -r hello.txt 10.0.2.2 && cat hello.txt") == "hello over tftp\n"


def test_socket_links(make_lab):
    lab = make_lab(TOPO / "socket.toml")
    lab.host.sh("ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo")
    static = {"a": "kvmnet.static=eth0:10.50.0.1/24,eth1:10.51.0.1/24",
              "b": "kvmnet.static=eth0:10.50.0.2/24,eth1:10.51.0.2/24",
              "c": "kvmnet.static=eth0:10.51.0.3/24"}
    a, b, c = lab.boot("a", "b", "c", append=static)
    a.check("ping -c1 -W3 10.50.0.2")   # tcp listen/connect pair
    b.check("ping -c1 -W3 10.50.0.1")
    for guest, peers in ((a, ("10.51.0.2", "10.51.0.3")), (c, ("10.51.0.1", "10.51.0.2"))):
        for peer in peers:  # the multicast segment of three
            guest.check(f"ping -c1 -W3 {peer}")
