"""Bridge mode on an uplink configured by SLAAC: the LAN's router (dnsmasq's router
advertisements, in its own namespace) gives the uplink an address and a default route; after
apply the bridge carries them and keeps learning from new advertisements; after destroy the
uplink does again. Before: the kernel's prefix route stayed on the enslaved uplink and took the
LAN's traffic (neighbour discovery cannot work on a bridge port): LAN hosts the machine had not
talked to yet were unreachable over IPv6; and the released uplink waited for the router's next
unsolicited advertisement (minutes on a real LAN) for its default route."""

import re
import textwrap
import time

import pytest
from helpers.netns import Netns

pytestmark = pytest.mark.root

MAC = "52:54:00:aa:00:01"
SLAAC = {"2001:db8:5::/64": "2001:db8:5:0:5054:ff:feaa:1", "2001:db8:6::/64": "2001:db8:6:0:5054:ff:feaa:1"}
LAN_ROUTER, BEYOND = "2001:db8:5::1", "2001:db8:77::1"  # the router, and an address behind it


def _start_router(lan, tmp_path, prefixes):
    """dnsmasq advertising `prefixes` for SLAAC (ra-only); it sends advertisements at start."""
    pid = tmp_path / "dnsmasq.pid"
    if pid.exists():
        lan.run("kill", pid.read_text().strip())
        for _ in range(50):
            if not any("dnsmasq" in p for p in lan.processes()):
                break
            time.sleep(0.1)
    ranges = [f"--dhcp-range={p.split('/')[0]},ra-only,64,1h" for p in prefixes]
    lan.run("dnsmasq", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces",
            "--enable-ra", *ranges, f"--dhcp-leasefile={tmp_path / 'leases'}", f"--pid-file={pid}",
            f"--log-facility={tmp_path / 'router.log'}")


def _solicitations(tmp_path) -> int:
    """Router solicitations the router got from the uplink's MAC (the bridge shares it)."""
    log = tmp_path / "router.log"
    return log.read_text().count(f"RTR-SOLICIT(lan0) {MAC}") if log.exists() else 0


def _wait(what, probe, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not (got := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.2)
    return got


def _slaac_on(ns, dev, prefix):
    """The EUI-64 address in prefix on dev, usable (not tentative), and kernel-made (dynamic)."""
    out = ns.run("ip", "-6", "addr", "show", "dev", dev, "scope", "global", check=False).stdout
    return re.search(rf"inet6 {SLAAC[prefix]}/64 scope global dynamic(?! tentative)", out) is not None


def _ra_default(ns, dev):
    return re.search(rf"^default via fe80::\S+ dev {dev} proto ra", ns.run("ip", "-6", "route").stdout, re.M)


def _reaches(ns, target):
    return ns.run("busybox", "ping", "-c", "1", "-W", "2", target, check=False).returncode == 0


# the host's IPv6 settings besides the kernel's defaults (parametrized tests): the uplink's
# sysctls, set before the router speaks
FORWARDING = "net.ipv6.conf.all.forwarding=1 net.ipv6.conf.eth0.accept_ra=2"  # as kvmnet leaves an
# RA-configured uplink while a nat network routes IPv6
NO_AUTOCONF = "net.ipv6.conf.eth0.autoconf=0"  # RAs for routes only, no SLAAC address


@pytest.fixture
def lan(netns, tmp_path, request):
    sysctls = getattr(request, "param", "")
    other = Netns("kn-lan")
    try:
        netns.sh(f"ip link add eth0 type veth peer name lan0 && ip link set lan0 netns {other.name} && "
                 f"ip link set eth0 address {MAC} up" + (f" && sysctl -qw {sysctls}" if sysctls else ""))
        other.sh("ip link set lan0 up && ip -6 addr add 2001:db8:5::1/64 dev lan0 nodad && "
                 "ip -6 addr add 2001:db8:5::2/64 dev lan0 nodad && ip -6 addr add 2001:db8:6::1/64 dev lan0 nodad && "
                 "ip -6 addr add 2001:db8:77::1/128 dev lo")
        tmp_path.chmod(0o777)  # dnsmasq drops to its own user
        _start_router(other, tmp_path, ["2001:db8:5::/64"])
        _wait("the uplink's RA default route", lambda: _ra_default(netns, "eth0"))
        if sysctls != NO_AUTOCONF:
            _wait("SLAAC on the uplink", lambda: _slaac_on(netns, "eth0", "2001:db8:5::/64"))
        yield other
    finally:
        other.delete()


def _apply(netns, tmp_path):
    topo = tmp_path / "lan.toml"
    topo.write_text(textwrap.dedent("""
        [networks.lan]
        mode = "bridge"
        bridge = "br0"
        uplink = "eth0"
        stp = false
        """))
    res = netns.kvmnet("apply", str(topo))
    assert res.returncode == 0, res.stdout + res.stderr
    return topo


def test_slaac_keeps_working_on_the_bridge_and_on_the_uplink_after_destroy(netns, lan, tmp_path):
    assert _reaches(netns, LAN_ROUTER) and _reaches(netns, BEYOND)
    topo = _apply(netns, tmp_path)
    # the bridge has the address and learns its default route from the router
    _wait("SLAAC address on the bridge", lambda: _slaac_on(netns, "br0", "2001:db8:5::/64"))
    _wait("RA default route on the bridge", lambda: _ra_default(netns, "br0"))
    # the LAN (on-link) and beyond, through the bridge; the port keeps no IPv6 route of its own
    assert _reaches(netns, "2001:db8:5::2"), netns.run("ip", "-6", "route").stdout
    assert _reaches(netns, LAN_ROUTER), netns.run("ip", "-6", "route").stdout
    assert _reaches(netns, BEYOND), netns.run("ip", "-6", "route").stdout
    assert "dev eth0" not in netns.run("ip", "-6", "route", "show", "table", "all").stdout
    # a new advertisement (a second prefix) is still taken: a bridge-mode bridge keeps SLAAC on
    _start_router(lan, tmp_path, ["2001:db8:5::/64", "2001:db8:6::/64"])
    _wait("SLAAC from a new advertisement on the bridge", lambda: _slaac_on(netns, "br0", "2001:db8:6::/64"))
    check = netns.kvmnet("check", str(topo))
    assert check.returncode == 0, check.stdout + check.stderr
    solicited = _solicitations(tmp_path)
    res = netns.kvmnet("destroy", str(topo))
    assert res.returncode == 0, res.stdout + res.stderr
    # the uplink configures itself again, and asks the router at once: no waiting for its next
    # unsolicited advertisement (here within seconds of its restart, on a real LAN minutes away)
    _wait("a router solicitation from the uplink", lambda: _solicitations(tmp_path) > solicited)
    for prefix in SLAAC:
        _wait(f"SLAAC in {prefix} on the uplink again", lambda: _slaac_on(netns, "eth0", prefix))
    _wait("the uplink's RA default route again", lambda: _ra_default(netns, "eth0"))
    assert _reaches(netns, LAN_ROUTER) and _reaches(netns, BEYOND)


@pytest.mark.parametrize("lan", [FORWARDING, NO_AUTOCONF], indirect=True, ids=["forwarding", "no-autoconf"])
def test_the_bridge_learns_from_router_advertisements_as_its_uplink_did(netns, lan, tmp_path, request):
    """A new bridge has the kernel's defaults: accept_ra=1, which IPv6 forwarding turns into
    "ignore them" (no default route: nothing beyond the LAN), and autoconf=1 (a SLAAC address
    the uplink never had). It takes the uplink's settings instead."""
    topo = _apply(netns, tmp_path)
    _wait("RA default route on the bridge", lambda: _ra_default(netns, "br0"))
    # the bridge's own addresses may still be in duplicate address detection when the route comes
    _wait("beyond the router, through the bridge", lambda: _reaches(netns, BEYOND))
    # the advertisement that gave the route was taken for addresses too, or not, as on the uplink
    if request.node.callspec.id == "no-autoconf":
        assert SLAAC["2001:db8:5::/64"] not in netns.run("ip", "-6", "addr").stdout
    else:
        _wait("SLAAC address on the bridge", lambda: _slaac_on(netns, "br0", "2001:db8:5::/64"))
    check = netns.kvmnet("check", str(topo))
    assert check.returncode == 0, check.stdout + check.stderr
    res = netns.kvmnet("destroy", str(topo))
    assert res.returncode == 0, res.stdout + res.stderr
    _wait("the uplink's RA default route again", lambda: _ra_default(netns, "eth0"))
    # its IPv6 comes back with a new link-local address (duplicate address detection first) and an
    # empty neighbour table: the route can be there a moment before the first echo gets through
    _wait("beyond the router again, through the uplink", lambda: _reaches(netns, BEYOND))
