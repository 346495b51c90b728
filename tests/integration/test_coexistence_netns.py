"""kvmnet next to Docker and libvirt: their rules stay byte-identical (apart from kvmnet's two
commented accepts in a DROP-policy FORWARD chain, removed on destroy), their dnsmasq is never
touched, and NAT guests still get out and are reached under Docker's FORWARD policy DROP."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.natlab import HELPERS, NatLab
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "data" / "topologies" / "nat-lab.toml"

DOCKER = """
iptables -P FORWARD DROP
iptables -N DOCKER
iptables -N DOCKER-USER
iptables -N DOCKER-ISOLATION-STAGE-1
iptables -A FORWARD -j DOCKER-USER
iptables -A FORWARD -j DOCKER-ISOLATION-STAGE-1
iptables -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A FORWARD -o docker0 -j DOCKER
iptables -A DOCKER-USER -j RETURN
iptables -A DOCKER-ISOLATION-STAGE-1 -j RETURN
iptables -t nat -N DOCKER
iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
iptables -t nat -A POSTROUTING -s 10.200.0.0/16 -j MASQUERADE -m comment --comment user-rule
"""
LIBVIRT = """
table inet libvirt_network {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "virbr9" ip saddr 10.9.9.0/24 counter accept
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.9.9.0/24 ip daddr != 10.9.9.0/24 masquerade
  }
}
"""


def _foreign(ns) -> str:
    """Every rule that is not kvmnet's, without counters."""
    nft = ns.run("nft", "list", "ruleset").stdout
    nft = re.sub(r"table inet kvmnet_\w+ \{.*?\n\}\n", "", nft, flags=re.S)
    # iptables-nft's tables are compared through iptables-save, which shows rule comments
    nft = re.sub(r"table ip (filter|nat|mangle|raw) \{.*?\n\}\n", "", nft, flags=re.S)
    nft = re.sub(r"counter packets \d+ bytes \d+", "counter", nft)
    nft = "\n".join(l for l in nft.splitlines() if "kvmnet" not in l)
    save = ns.run("iptables-save").stdout
    save = "\n".join(re.sub(r"\[\d+:\d+\]", "", l) for l in save.splitlines()
                     if not l.startswith("#") and "kvmnet" not in l)
    return nft + "\n---\n" + save


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("foreign-dnsmasq")
    lab = NatLab(TOPOLOGY)
    try:
        lab.host.sh(DOCKER.strip().replace("\n", " && "))
        lab.host.run("nft", "-f", "-", input=LIBVIRT)
        # someone else's dnsmasq, on someone else's bridge
        lab.host.sh("ip link add virbr9 type bridge && sysctl -qw net.ipv6.conf.virbr9.disable_ipv6=1 && ip addr add 10.9.9.1/24 dev virbr9 && ip link set virbr9 up")
        lab.host.run("dnsmasq", "--conf-file=/dev/null", "--interface=virbr9", "--bind-interfaces",
                     "--except-interface=lo", "--dhcp-range=10.9.9.10,10.9.9.20",
                     # never /dev/null here: dnsmasq replaces its pid file (it would delete /dev/null)
                     f"--pid-file={tmp}/foreign.pid", f"--dhcp-leasefile={tmp}/foreign.leases")
        lab.foreign_dnsmasq = [p for p in lab.host.processes() if "dnsmasq" in p]
        lab.before = lab.host.snapshot()
        lab.foreign = _foreign(lab.host)
        lab.apply()
        lab.web = lab.add_client("web", "52:54:00:12:34:56")
        yield lab
    finally:
        lab.close()


def test_guests_work_under_docker_forward_drop(lab):
    assert lab.web.fetch("http://10.0.0.1/") == "wan saw 10.0.0.2\n"
    out = lab.wan.run(sys.executable, str(HELPERS / "fetch.py"), "http://10.0.0.2:8080/", check=False).stdout
    assert out == "web saw 10.0.0.1\n"


def test_only_kvmnets_commented_accepts_are_added(lab):
    rules = lab.host.run("iptables", "-S", "FORWARD").stdout.splitlines()
    ours = [r for r in rules if "kvmnet" in r]
    assert sorted(ours) == ['-A FORWARD -i virbr0 -m comment --comment "kvmnet natlab" -j ACCEPT',
                            '-A FORWARD -o virbr0 -m comment --comment "kvmnet natlab" -j ACCEPT']
    assert "-P FORWARD DROP" in rules
    assert _foreign(lab.host) == lab.foreign


def test_reapply_adds_no_duplicates(lab):
    lab.apply()
    lab.apply()
    assert sum("kvmnet" in r for r in lab.host.run("iptables", "-S", "FORWARD").stdout.splitlines()) == 2


def test_other_dnsmasq_untouched_and_destroy_restores_everything(lab):
    assert [p for p in lab.host.processes() if "dnsmasq" in p and p in lab.foreign_dnsmasq] == lab.foreign_dnsmasq
    lab.remove_clients()
    assert lab.kvmnet("destroy", str(TOPOLOGY)).returncode == 0
    assert _foreign(lab.host) == lab.foreign
    after = lab.host.snapshot()
    after["nft"] = re.sub(r"counter packets \d+ bytes \d+", "", after["nft"])
    before = dict(lab.before, nft=re.sub(r"counter packets \d+ bytes \d+", "", lab.before["nft"]))
    after["iptables"] = re.sub(r"\[\d+:\d+\]", "", after["iptables"])
    before["iptables"] = re.sub(r"\[\d+:\d+\]", "", before["iptables"])
    assert after == before, snapshot_diff(before, after)
    lab.apply()


def test_bridge_mode_guests_reach_the_lan_under_docker_drop_with_br_netfilter(netns, tmp_path):
    """br_netfilter (bridge-nf-call-iptables=1, on by default here) sends bridged frames through
    FORWARD, where Docker's DROP policy would cut bridge-mode guests off their LAN."""
    from helpers.netns import Netns
    lan, guest = Netns("kn-lan"), Netns("kn-g")
    try:
        assert netns.run("sysctl", "-n", "net.bridge.bridge-nf-call-iptables").stdout.strip() == "1"
        netns.sh(f"ip link add eth0 type veth peer name eth0 netns {lan.name} && ip addr add 10.9.0.2/24 dev eth0 && "
                 "ip link set eth0 up && ip route add default via 10.9.0.1")
        lan.sh("ip addr add 10.9.0.1/24 dev eth0 && ip link set eth0 up")
        lan.run("dnsmasq", "--conf-file=/dev/null", "--interface=eth0", "--bind-interfaces", "--no-ping",
                f"--pid-file={tmp_path}/lan.pid", f"--dhcp-leasefile={tmp_path}/lan.leases", "--dhcp-range=10.9.0.100,10.9.0.199,1h")
        subprocess.Popen(["ip", "netns", "exec", lan.name, sys.executable, str(HELPERS / "httpd.py"), "80", "lan"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        netns.sh(DOCKER.strip().replace("\n", " && "))
        res = netns.kvmnet("apply", str(TOPOLOGY.parents[3] / "topologies" / "bridge.toml"))
        assert res.returncode == 0, res.stderr
        assert "-i br0 -o br0" in netns.run("iptables", "-S", "FORWARD").stdout
        netns.sh(f"ip link add port0 type veth peer name eth0 netns {guest.name} && ip link set port0 master br0 up")
        guest.sh("ip link set eth0 up")
        lease = guest.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "10", "-T", "1",
                          "-s", str(HELPERS / "udhcpc.script"), check=False, timeout=40).stdout
        assert "LEASE ip=10.9.0.1" in lease, lease
        out = guest.run(sys.executable, str(HELPERS / "fetch.py"), "http://10.9.0.1/", "5", check=False).stdout
        assert out.startswith("lan saw 10.9.0.1"), out
        # the accept is what makes it work: without it Docker's policy drops the bridged frames
        netns.sh('iptables -D FORWARD -i br0 -o br0 -m comment --comment "kvmnet bridge" -j ACCEPT')
        out = guest.run(sys.executable, str(HELPERS / "fetch.py"), "http://10.9.0.1/", "1", check=False).stdout
        assert out.startswith("ERROR"), out
        assert netns.kvmnet("check", str(TOPOLOGY.parents[3] / "topologies" / "bridge.toml")).returncode == 1
        assert netns.kvmnet("apply", str(TOPOLOGY.parents[3] / "topologies" / "bridge.toml")).returncode == 0
        out = guest.run(sys.executable, str(HELPERS / "fetch.py"), "http://10.9.0.1/", "5", check=False).stdout
        assert out.startswith("lan saw 10.9.0.1"), out
        netns.sh("ip link del port0")
        assert netns.kvmnet("destroy", str(TOPOLOGY.parents[3] / "topologies" / "bridge.toml")).returncode == 0
        assert "kvmnet" not in netns.run("iptables", "-S", "FORWARD").stdout
    finally:
        guest.delete()
        lan.delete()


def test_isolated_guests_reach_each_other_under_docker_drop_with_br_netfilter(netns):
    """An isolated network's guests talk over its bridge only; with br_netfilter those bridged
    frames pass FORWARD, where Docker's DROP policy cut them off each other."""
    from helpers.natlab import Client, dhcp_lease, serve
    from helpers.netns import Netns
    isolated = TOPOLOGY.parents[3] / "topologies" / "isolated.toml"
    guests = [Netns("kn-g"), Netns("kn-g")]
    try:
        assert netns.run("sysctl", "-n", "net.bridge.bridge-nf-call-iptables").stdout.strip() == "1"
        netns.sh(DOCKER.strip().replace("\n", " && "))
        res = netns.kvmnet("apply", str(isolated))
        assert res.returncode == 0, res.stderr
        clients = []
        for i, g in enumerate(guests):
            netns.sh(f"ip link add port{i} type veth peer name eth0 netns {g.name} && ip link set port{i} master kvmiso0 up")
            g.sh(f"ip link set eth0 address 52:54:00:77:00:0{i} up")
            clients.append(Client(g, f"g{i}", dhcp_lease(g, f"g{i}")))
        serve(guests[1], "g1", 80)
        assert clients[0].fetch(f"http://{clients[1].lease['ip']}/", 3).startswith("g1 saw 10.77.0.")
        assert netns.kvmnet("check", str(isolated)).returncode == 0
        assert netns.kvmnet("destroy", str(isolated)).returncode == 0
        assert "kvmnet" not in netns.run("iptables", "-S", "FORWARD").stdout
    finally:
        for g in guests:
            g.delete()


SIX = """\
name = "six"
[networks.n]
mode = "nat"
bridge = "kv6d"
stp = false
subnet = "10.66.0.0/24"
subnet6 = "fd00:66::/64"
"""


def test_ipv6_guests_reach_the_wan_under_docker_ip6tables_drop(netns, tmp_path):
    """Docker 27 sets the ip6tables FORWARD policy to DROP too: a routed IPv6 prefix's guests
    were cut off (nft accepts cannot undo another base chain's drop); kvmnet's ip6tables accepts
    let them out and the wan in, and go with destroy."""
    from helpers.natlab import Client
    from helpers.netns import Netns
    from integration.test_ipv6_netns import HTTP6, serve6
    topology = tmp_path / "six.toml"
    topology.write_text(SIX)
    wan, guest = Netns("kn-w6"), Netns("kn-g6")
    try:
        netns.sh(f"ip link add wan0 type veth peer name eth0 netns {wan.name} && ip addr add 10.9.0.2/24 dev wan0 && "
                 "ip -6 addr add fd00:99::2/64 dev wan0 nodad && ip link set wan0 up && "
                 "ip route add default via 10.9.0.1 && ip -6 route add default via fd00:99::1")
        wan.sh("ip addr add 10.9.0.1/24 dev eth0 && ip -6 addr add fd00:99::1/64 dev eth0 nodad && ip link set eth0 up && "
               "ip -6 route add fd00:66::/64 via fd00:99::2")
        serve6(wan, "wan")
        netns.sh("ip6tables -P FORWARD DROP && ip6tables -N DOCKER-USER && ip6tables -A FORWARD -j DOCKER-USER")
        res = netns.kvmnet("apply", str(topology))
        assert res.returncode == 0, res.stderr
        netns.sh(f"ip link add port0 type veth peer name eth0 netns {guest.name} && ip link set port0 master kv6d up")
        guest.sh("ip link set eth0 up && ip -6 addr add fd00:66::10/64 dev eth0 nodad && "
                 "ip -6 route add default via fd00:66::1")
        serve6(guest, "g")
        client, outside = Client(guest, "g", {}), Client(wan, "wan", {})
        assert client.fetch(f"http://[fd00:99::1]:{HTTP6}/", 5).startswith("wan saw fd00:66::")  # (or its SLAAC one)
        assert outside.fetch(f"http://[fd00:66::10]:{HTTP6}/", 5) == "g saw fd00:99::1\n"
        ours = [r for r in netns.run("ip6tables", "-S", "FORWARD").stdout.splitlines() if "kvmnet" in r]
        assert sorted(ours) == ['-A FORWARD -i kv6d -m comment --comment "kvmnet six" -j ACCEPT',
                                '-A FORWARD -o kv6d -m comment --comment "kvmnet six" -j ACCEPT']
        # the accepts are what makes it work: without them Docker's policy drops the guest's packets
        netns.sh('ip6tables -D FORWARD -i kv6d -m comment --comment "kvmnet six" -j ACCEPT')
        assert client.fetch(f"http://[fd00:99::1]:{HTTP6}/", 1).startswith("ERROR")
        assert netns.kvmnet("check", str(topology)).returncode == 1
        assert netns.kvmnet("apply", str(topology)).returncode == 0
        assert client.fetch(f"http://[fd00:99::1]:{HTTP6}/", 5).startswith("wan saw fd00:66::")  # (or its SLAAC one)
        netns.sh("ip link del port0")
        assert netns.kvmnet("destroy", str(topology)).returncode == 0
        assert "kvmnet" not in netns.run("ip6tables", "-S", "FORWARD").stdout
        assert "DOCKER-USER" in netns.run("ip6tables", "-S", "FORWARD").stdout
    finally:
        guest.delete()
        wan.delete()
