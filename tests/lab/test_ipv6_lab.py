"""A real guest on kvmnet's dual-stack NAT networks (nftables backend): one guest, two NICs,
one boot for every assertion (TCG boots are the lab's cost).

eth0 is on "r6" (nat for IPv4, its IPv6 prefix routed: libvirt's default) with a DHCPv6 range;
eth1 on "m6" (nat6 = true) with a static ip6. The guest (booted with kvmnet.ipv6=N) takes a
SLAAC address from kvmnet's router advertisements and a DHCPv6 lease (ISC dhclient -6 in the
image) on each NIC and reports them. The wan namespace is an IPv6 router with a web server on
[::]:8086 and a route back to r6's prefix through the host."""

import ipaddress
import subprocess
import time

import pytest

from helpers.natlab import HELPERS, PY

pytestmark = pytest.mark.root
WAN6_HOST, WAN6_PEER, HTTP6 = "fd00:99::2", "fd00:99::1", 8086
R6, M6 = "fd00:66::/64", "fd00:67::/64"
M6_IP6 = "fd00:67::10"
TOPOLOGY = f"""\
name = "ipv6guest"
[networks.r6]
mode = "nat"
bridge = "kvl6a"
stp = false
subnet = "10.66.0.0/24"
subnet6 = "{R6}"
domain = "r6.lan"
[networks.r6.dhcp]
start = "10.66.0.100"
end = "10.66.0.199"
[networks.r6.dhcp6]
start = "fd00:66::100"
end = "fd00:66::1ff"

[networks.m6]
mode = "nat"
bridge = "kvl6b"
stp = false
subnet = "10.67.0.0/24"
subnet6 = "{M6}"
nat6 = true
domain = "m6.lan"
[networks.m6.dhcp]
start = "10.67.0.100"
end = "10.67.0.199"
[networks.m6.dhcp6]
start = "fd00:67::100"
end = "fd00:67::1ff"

[guests.g6]
[[guests.g6.nics]]
network = "r6"
mac = "52:54:00:66:00:10"
[[guests.g6.nics]]
network = "m6"
mac = "52:54:00:67:00:10"
ip6 = "{M6_IP6}"
"""


def _in(addr: str, prefix: str) -> bool:
    return ipaddress.ip_interface(addr).ip in ipaddress.ip_network(prefix)


def _wan_sees(guest, via: str, dev: str, src: str = "") -> str:
    """GET the wan's page with the guest's route to it through `via` (kvmnet's gateway6):
    the guest has an RA default route on each NIC, so the test picks the path."""
    guest.check(f"ip -6 route del {WAN6_PEER}/128 2>/dev/null; "
                f"ip -6 route add {WAN6_PEER}/128 via {via} dev {dev}" + (f" src {src}" if src else ""))
    rc, out = guest.run(f"timeout 5 wget -qO- http://[{WAN6_PEER}]:{HTTP6}/", timeout=10)
    assert rc == 0, out
    return out


def test_real_guest_gets_slaac_and_dhcpv6_and_reaches_an_ipv6_wan_host(make_lab, tmp_path):
    path = tmp_path / "ipv6guest.toml"
    path.write_text(TOPOLOGY)
    lab = make_lab(path)
    lab.host.sh(f"ip -6 addr add {WAN6_HOST}/64 dev wan0 nodad && ip -6 route add default via {WAN6_PEER}")
    lab.wan.sh(f"ip -6 addr add {WAN6_PEER}/64 dev eth0 nodad && ip -6 route add {R6} via {WAN6_HOST}")
    subprocess.Popen(["ip", "netns", "exec", lab.wan.name, PY, str(HELPERS / "httpd.py"), str(HTTP6), "wan6", "::"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.apply()
    start = time.monotonic()
    (g6,) = lab.boot("g6", append={"g6": "kvmnet.ipv6=20"})
    print(f"boot with IPv6 leases: {time.monotonic() - start:.1f}s")
    v6 = g6.leases6()
    r6, m6 = v6["eth0"], v6["eth1"]
    # SLAAC from kvmnet's RAs: EUI-64 from the NIC's MAC, in each prefix
    assert r6["slaac"] == "fd00:66::5054:ff:fe66:10/64", v6
    assert m6["slaac"] == "fd00:67::5054:ff:fe67:10/64", v6
    # DHCPv6: one from r6's range, m6's static ip6; dnsmasq's DNS server is the gateway
    dyn = ipaddress.ip_interface(r6["dhcp6"]).ip
    assert ipaddress.ip_address("fd00:66::100") <= dyn <= ipaddress.ip_address("fd00:66::1ff"), v6
    assert m6["dhcp6"] == f"{M6_IP6}/128" and m6["dns6"] == "fd00:67::1", v6
    assert r6["router6"].startswith("fe80::") and m6["router6"].startswith("fe80::"), v6
    leases = lab.kvmnet("leases", "r6").stdout + lab.kvmnet("leases", "m6").stdout
    assert str(dyn) in leases and M6_IP6 in leases, leases
    # AAAA record of the static ip6, from kvmnet's dnsmasq
    assert M6_IP6 in g6.check("nslookup -type=AAAA g6.m6.lan fd00:67::1")
    # routed prefix: the wan sees the guest's own addresses (SLAAC, then the DHCPv6 one)
    slaac = r6["slaac"].split("/")[0]
    assert _wan_sees(g6, "fd00:66::1", "eth0", slaac) == f"wan6 saw {slaac}\n"
    assert _wan_sees(g6, "fd00:66::1", "eth0", str(dyn)) == f"wan6 saw {dyn}\n"
    # ... and reaches the guest at its routed address (busybox httpd on [::]:80)
    page = lab.wan.run(PY, str(HELPERS / "fetch.py"), f"http://[{slaac}]/", "5", check=False).stdout
    assert "kvmnet guest g6" in page and M6_IP6 in page, page
    # nat6: the wan sees the host's address
    assert _wan_sees(g6, "fd00:67::1", "eth1") == f"wan6 saw {WAN6_HOST}\n"
