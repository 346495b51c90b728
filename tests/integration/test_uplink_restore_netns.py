"""Bridge mode moves the uplink's addresses and routes to the bridge and back exactly (issue 12
item 8): every address (IPv4 and IPv6, with brd, label, noprefixroute, order and lifetimes)
and every route through the uplink in every table. Before: primary and secondary swapped,
brd/labels/flags/lifetimes lost, the table-100 route gone for good, IPv6 left on the port."""

import re
import textwrap

import pytest
from helpers.netns import Netns

pytestmark = pytest.mark.root

UPLINK = [
    "ip addr add 10.9.0.50/24 brd + dev eth0 valid_lft 3600 preferred_lft 1800",  # a DHCP lease
    "ip addr add 10.9.0.51/24 dev eth0 label eth0:1",  # its secondary
    "ip addr add 10.9.7.7/24 dev eth0 noprefixroute metric 7",
    "ip -6 addr add 2001:db8:9::50/64 dev eth0 nodad",
    "ip -6 addr add 2001:db8:9::51/64 dev eth0 nodad valid_lft 7200 preferred_lft 600",
    "ip route add default via 10.9.0.253 dev eth0 proto dhcp src 10.9.0.50 metric 100",
    "ip route add 203.0.113.0/24 via 10.9.0.253 table 100",
    "ip route add 198.51.100.0/24 dev eth0 scope link src 10.9.0.51",
    "ip -6 route add 2001:db8:ff::/48 via 2001:db8:9::1 dev eth0 metric 512",
    "ip -6 route add default via 2001:db8:9::1 dev eth0 table 100",
]


def _addrs(ns) -> list[str]:
    """`ip -d addr` with the lifetimes' countdown blanked out (they count down by design)."""
    text = ns.run("ip", "-d", "addr").stdout
    return [re.sub(r"(valid|preferred)_lft \d+sec", r"\1_lft Nsec", line) for line in text.splitlines()]


def _routes(ns) -> dict:
    strip = lambda text: [re.sub(r" expires \d+sec", "", l) for l in text.splitlines()]  # noqa: E731
    return {v: strip(ns.run("ip", *v.split(), "route", "show", "table", "all").stdout) for v in ("-4", "-6")}


def _lifetimes(ns, cidr: str) -> tuple[int, int]:
    out = ns.run("ip", "addr", "show", "to", cidr).stdout
    valid, preferred = re.search(r"valid_lft (\d+)sec preferred_lft (\d+)sec", out).groups()
    return int(valid), int(preferred)


@pytest.fixture
def lan(netns):
    """The uplink's LAN: the other end of eth0, with a router at .253 and 2001:db8:9::1."""
    other = Netns("kn-lan")
    try:
        netns.sh(f"ip link add eth0 type veth peer name lan0 && ip link set lan0 netns {other.name} && "
                 "ip link set eth0 up")
        other.sh("ip link set lan0 up && ip addr add 10.9.0.253/24 dev lan0 && "
                 "ip -6 addr add 2001:db8:9::1/64 dev lan0 nodad")
        netns.sh(" && ".join(UPLINK))
        netns.settle()
        yield other
    finally:
        other.delete()


def test_uplink_moves_to_the_bridge_and_back_exactly(netns, lan, tmp_path):
    topo = tmp_path / "lan.toml"
    topo.write_text(textwrap.dedent("""
        [networks.lan]
        mode = "bridge"
        bridge = "br0"
        uplink = "eth0"
        stp = false
        """))
    addrs, routes = _addrs(netns), _routes(netns)
    res = netns.kvmnet("apply", str(topo))
    assert res.returncode == 0, res.stderr
    # applied: everything is on the bridge, as it was on the uplink, and works (IPv6 too)
    on_bridge = netns.run("ip", "addr", "show", "br0").stdout
    for text in ("inet 10.9.0.50/24 brd 10.9.0.255 scope global dynamic br0",
                 "inet 10.9.0.51/24 scope global secondary br0:1", "inet 10.9.7.7/24 metric 7 scope global noprefixroute br0",
                 "inet6 2001:db8:9::51/64 scope global nodad dynamic", "inet6 2001:db8:9::50/64 scope global nodad"):
        assert text in on_bridge, on_bridge
    assert "inet" not in netns.run("ip", "addr", "show", "eth0").stdout.replace("inet6 fe80", "")
    assert netns.run("ip", "route", "show", "table", "100").stdout == "203.0.113.0/24 via 10.9.0.253 dev br0 \n"
    assert "default via 2001:db8:9::1 dev br0" in netns.run("ip", "-6", "route", "show", "table", "100").stdout
    assert "198.51.100.0/24 dev br0 scope link src 10.9.0.51" in netns.run("ip", "route").stdout
    valid, preferred = _lifetimes(netns, "10.9.0.50/24")
    assert 3500 < valid <= 3600 and 1700 < preferred <= 1800  # what was left, not a fresh lease
    for target in ("10.9.0.253", "2001:db8:9::1"):
        ping = netns.run("busybox", "ping", "-c", "1", "-W", "3", target, check=False)
        assert ping.returncode == 0, (target, ping.stdout, ping.stderr)
    check = netns.kvmnet("check", str(topo))
    assert check.returncode == 0, check.stdout + check.stderr
    res = netns.kvmnet("destroy", str(topo))
    assert res.returncode == 0, res.stderr
    netns.settle()  # IPv6 back on the uplink (off while it was a port): its link-local's DAD
    assert _addrs(netns) == addrs
    assert _routes(netns) == routes
    assert _lifetimes(netns, "10.9.0.50/24")[0] <= valid  # still counting down, not renewed
