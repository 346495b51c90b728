"""Isolation between virtual networks, with real traffic, on both firewall backends.

A guest may reach its own network, the outside (through NAT or routing), forwarded ports, and
a routed network's subnet (as libvirt allows); never a guest of another NAT or isolated network,
of the same topology or of another one, in either order of applying them. The gateway's DNS
answers only on its own bridge, not to a LAN host that routes to the gateway address."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.natlab import NatLab

pytestmark = pytest.mark.root
DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"
FIRST, SECOND = DATA / "isolation-a.toml", DATA / "isolation-b.toml"
BRIDGES = {"a": "kvb-a", "b": "kvb-b", "c": "kvb-c", "d": "kvb-d", "e": "kvb-e"}


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def lab(request):
    lab = NatLab(FIRST, request.param)
    try:
        lab.apply()
        res = lab.kvmnet("apply", "--firewall", request.param, str(SECOND))
        assert res.returncode == 0, res.stdout + res.stderr
        lab.wan.sh(f"ip route add 10.81.5.0/24 via {lab.WAN_HOST}")  # the LAN routes to the routed network
        lab.guests = {net: lab.add_client(net, f"52:54:00:81:00:0{i}", bridge)
                      for i, (net, bridge) in enumerate(sorted(BRIDGES.items()))}
        yield lab
    finally:
        lab.kvmnet("destroy", str(SECOND))
        lab.close()


def _reaches(lab, src: str, dst: str) -> bool:
    body = lab.guests[src].fetch(f"http://{lab.guests[dst].lease['ip']}/", 1)
    return body.startswith(f"{dst} saw ")


def test_guests_reach_the_outside_and_their_own_network(lab):
    for net in ("a", "b", "d", "e"):
        assert lab.guests[net].fetch(f"http://{lab.WAN_PEER}/", 2).startswith("wan saw "), net
    assert _reaches(lab, "a", "a")
    assert "ERROR" in lab.guests["c"].fetch(f"http://{lab.WAN_PEER}/", 1)  # isolated


@pytest.mark.parametrize("src,dst", [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a"), ("e", "a"),
                                     ("a", "d"), ("d", "a"), ("d", "b"), ("b", "d"), ("d", "c")])
def test_no_guest_opens_a_connection_into_another_network(lab, src, dst):
    body = lab.guests[src].fetch(f"http://{lab.guests[dst].lease['ip']}/", 1)
    assert "ERROR" in body, f"{src} reached {dst}: {body!r}"


_LISTEN = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
s.settimeout(float(sys.argv[3]))
try:
    print("got", s.recvfrom(100)[0].decode(), flush=True)
except socket.timeout:
    print("nothing")
"""


def _udp_arrives(lab, to: str, bind: str, port: int, sender, dst: str, dst_port: int) -> bool:
    """Whether any of five datagrams `sender` sends to dst:dst_port reaches a listener on
    bind:port in guest `to`'s namespace (one way: no answer needed, as a leak needs none). The
    listener waits until the sender is done and half a second more, however late it started."""
    listener = subprocess.Popen(["ip", "netns", "exec", lab.guests[to].ns.name, sys.executable, "-c", _LISTEN,
                                 bind, str(port), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        sender.run(sys.executable, "-c", "import socket, sys, time\n"
                   "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   "for _ in range(5):\n"
                   "    s.sendto(b'leak', (sys.argv[1], int(sys.argv[2]))); time.sleep(0.05)", dst, str(dst_port))
        time.sleep(0.5)
    finally:
        listener.kill()
    return listener.communicate(timeout=10)[0].startswith("got leak")


def test_nothing_leaves_an_isolated_network_not_even_one_way(lab):
    """A guest of the isolated network c that routes through its gateway itself reaches neither
    the routed network e (whose inbound accept comes first in libvirt's order) nor a port
    forwarded into the NAT network a (DNATed on its own gateway address): one-way UDP, which
    needs no reply, proves it. The same datagrams from the LAN and from a do arrive."""
    c = lab.guests["c"].ns
    lab.guests["a"].ns.sh("ip addr add 10.81.1.250/24 dev eth0")
    lab.guests["d"].ns.sh("ip addr add 10.81.4.250/24 dev eth0")  # (d: the other topology's network)
    c.sh("ip route add 10.0.0.0/8 via 10.81.3.1")
    try:
        e = lab.guests["e"].lease["ip"]
        assert _udp_arrives(lab, "e", e, 9999, lab.guests["a"].ns, e, 9999)  # a routed subnet: reachable
        assert _udp_arrives(lab, "a", "10.81.1.250", 9053, lab.wan, lab.WAN_HOST, 9053)  # the forwards work
        assert _udp_arrives(lab, "d", "10.81.4.250", 9054, lab.wan, lab.WAN_HOST, 9054)
        assert not _udp_arrives(lab, "e", e, 9999, c, e, 9999)
        assert not _udp_arrives(lab, "a", "10.81.1.250", 9053, c, "10.81.3.1", 9053)
        assert not _udp_arrives(lab, "a", "10.81.1.250", 9053, c, lab.WAN_HOST, 9053)
        # another topology's forward: on iptables, its FWD chain's DNAT accept came before this one's reject
        assert not _udp_arrives(lab, "d", "10.81.4.250", 9054, c, "10.81.3.1", 9054)
    finally:
        c.sh("ip route del 10.0.0.0/8 via 10.81.3.1", check=False)
        lab.guests["a"].ns.sh("ip addr del 10.81.1.250/24 dev eth0", check=False)
        lab.guests["d"].ns.sh("ip addr del 10.81.4.250/24 dev eth0", check=False)


def test_leases_tell_the_mtu_and_no_router_on_an_isolated_network(lab):
    """libvirt's dnsmasq options: option 26 when the MTU is not 1500; an isolated network's
    clients get no default route (option 3 empty)."""
    assert lab.guests["b"].lease["mtu"] == "1400" and lab.guests["a"].lease["mtu"] == ""
    assert lab.guests["c"].lease["router"] == "" and lab.guests["a"].lease["router"] == "10.81.1.1"
    assert "default" not in lab.guests["c"].ns.run("ip", "route").stdout


def test_a_routed_subnet_is_reachable_as_libvirt_routes_it(lab):
    assert _reaches(lab, "a", "e") and _reaches(lab, "d", "e")


def _dns_answered(ns, server: str) -> bool:
    """Any DNS answer (NXDOMAIN included) from `server`, as busybox nslookup reports it."""
    out = ns.run("busybox", "nslookup", "-timeout=1", "-retry=1", "nosuchname", server, check=False)
    text = out.stdout + out.stderr
    assert ("timed out" in text) != ("can't find" in text or "Name:" in text), text  # one or the other
    return "timed out" not in text


def test_the_gateway_dns_answers_only_on_its_bridge(lab):
    """A LAN host routing to the NAT subnet asks the gateway: no answer; a guest asks: answered."""
    lab.wan.sh(f"ip route replace 10.81.1.0/24 via {lab.WAN_HOST}")
    try:
        assert not _dns_answered(lab.wan, "10.81.1.1")
    finally:
        lab.wan.sh("ip route del 10.81.1.0/24")
    assert _dns_answered(lab.guests["a"].ns, "10.81.1.1")
    assert _dns_answered(lab.host, "10.81.1.1")  # the host itself (on lo), as under libvirt
