"""IPv6 keys (subnet6, gateway6, nat6, [dhcp6], a NIC's ip6): what they load to, and every
validation rule with its exact message."""

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from helpers.configtext import load, problems

DUAL = """\
[networks.default]
mode = "nat"
bridge = "virbr0"
subnet = "192.168.122.0/24"
subnet6 = "fd00:dead:beef:1::/64"
[networks.default.dhcp]
start = "192.168.122.2"
end = "192.168.122.254"
[networks.default.dhcp6]
start = "fd00:dead:beef:1::100"
end = "fd00:dead:beef:1::1ff"
[guests.web]
[[guests.web.nics]]
network = "default"
ip6 = "fd00:dead:beef:1::10"
"""


def test_dual_stack_loads_with_defaults():
    topo = load(DUAL)
    net = topo.network("default")
    assert net.subnet6 == IPv6Network("fd00:dead:beef:1::/64")
    assert net.gateway6 == IPv6Address("fd00:dead:beef:1::1")  # the prefix's ::1
    assert str(net.gateway6_interface) == "fd00:dead:beef:1::1/64"
    assert net.nat6 is False
    assert (str(net.dhcp6.start), str(net.dhcp6.end), net.dhcp6.lease_time) == ("fd00:dead:beef:1::100", "fd00:dead:beef:1::1ff", "1h")
    assert topo.guest("web").nics[0].ip6 == IPv6Address("fd00:dead:beef:1::10")


def test_slaac_only_and_nat6_and_ipv4_only_networks():
    topo = load("""\
        [networks.a]
        mode = "nat"
        bridge = "br-a"
        subnet = "10.1.0.0/24"
        subnet6 = "fd00:1::/64"
        gateway6 = "fd00:1::fe"
        nat6 = true
        [networks.b]
        mode = "isolated"
        bridge = "br-b"
        subnet6 = "fd00:2::/64"
        [networks.c]
        mode = "routed"
        bridge = "br-c"
        subnet = "10.3.0.0/24"
        """)
    a, b, c = topo.networks
    assert (a.nat6, str(a.gateway6), a.dhcp6) == (True, "fd00:1::fe", None)
    assert (b.subnet, str(b.subnet6), str(b.gateway6)) == (None, "fd00:2::/64", "fd00:2::1")
    assert (c.subnet6, c.gateway6, c.nat6) == (None, None, False)


NET = DUAL.split("[guests.web]")[0]

CASES = [
    (DUAL.replace('subnet6 = "fd00:dead:beef:1::/64"', 'subnet6 = "fd00:dead:beef::/56"').replace("[networks.default.dhcp6]\nstart = \"fd00:dead:beef:1::100\"\nend = \"fd00:dead:beef:1::1ff\"\n", "").replace('ip6 = "fd00:dead:beef:1::10"\n', ""),
     "t.toml:5: networks.default.subnet6: /56: SLAAC needs a /64 (or give a [dhcp6] range for stateful DHCPv6)"),
    (NET.replace('"fd00:dead:beef:1::/64"', '"fd00:dead:beef:1::/124"'),
     "t.toml:5: networks.default.subnet6: /124 is outside /64-/120"),
    (NET.replace('"fd00:dead:beef:1::/64"', '"fd00:dead:beef:1::5/64"'),
     "t.toml:5: networks.default.subnet6: fd00:dead:beef:1::5/64 has host bits set; did you mean fd00:dead:beef:1::/64?"),
    (NET.replace('"fd00:dead:beef:1::/64"', '"10.0.0.0/24"'),
     "t.toml:5: networks.default.subnet6: 10.0.0.0/24 is IPv4; subnet6 takes an IPv6 prefix (like fd00:dead:beef:1::/64)"),
    (NET.replace('"fd00:dead:beef:1::/64"', '"fd00:dead:beef:1::"'),
     "t.toml:5: networks.default.subnet6: 'fd00:dead:beef:1::' has no prefix length (like fd00:dead:beef:1::/64)"),
    (NET.replace('"fd00:dead:beef:1::/64"', '"fe80::/64"'),
     "t.toml:5: networks.default.subnet6: fe80::/64 is not a prefix guests can use (link-local, multicast, loopback or reserved)"),
    (NET.replace('"fd00:dead:beef:1::/64"', '"nope"'),
     "t.toml:5: networks.default.subnet6: 'nope' is not an IPv6 prefix in CIDR form (like fd00:dead:beef:1::/64)"),
    (NET.replace('subnet6 = "fd00:dead:beef:1::/64"', 'subnet6 = "fd00:dead:beef:1::/64"\ngateway6 = "fd00:dead:beef:2::1"'),
     "t.toml:6: networks.default.gateway6: fd00:dead:beef:2::1 is outside subnet6 fd00:dead:beef:1::/64"),
    (NET.replace('subnet6 = "fd00:dead:beef:1::/64"', 'subnet6 = "fd00:dead:beef:1::/64"\ngateway6 = "fd00:dead:beef:1::"'),
     "t.toml:6: networks.default.gateway6: fd00:dead:beef:1:: is the subnet-router anycast address of fd00:dead:beef:1::/64"),
    (NET.replace('subnet6 = "fd00:dead:beef:1::/64"', 'subnet6 = "fd00:dead:beef:1::/64"\ngateway6 = "192.168.122.1"'),
     "t.toml:6: networks.default.gateway6: 192.168.122.1 is IPv4; this key takes an IPv6 address"),
    (NET.replace('end = "fd00:dead:beef:1::1ff"', 'end = "fd00:dead:beef:9::1ff"'),
     "t.toml:11: networks.default.dhcp6.end: fd00:dead:beef:9::1ff is outside subnet6 fd00:dead:beef:1::/64"),
    (NET.replace('end = "fd00:dead:beef:1::1ff"', 'end = "fd00:dead:beef:1::ff"'),
     "t.toml:11: networks.default.dhcp6.end: range fd00:dead:beef:1::100-fd00:dead:beef:1::ff is reversed"),
    (NET.replace('start = "fd00:dead:beef:1::100"', 'start = "fd00:dead:beef:1::1"'),
     "t.toml:10: networks.default.dhcp6.start: range fd00:dead:beef:1::1-fd00:dead:beef:1::1ff holds the gateway6 fd00:dead:beef:1::1"),
    (NET.replace('end = "fd00:dead:beef:1::1ff"\n', ''),
     "t.toml:9: networks.default.dhcp6.end: is required"),
    (NET.replace('start = "fd00:dead:beef:1::100"', 'start = "fd00:dead:beef:1::100"\nlease = "1h"'),
     "t.toml:11: networks.default.dhcp6.lease: unknown key (allowed: start, end, lease_time)"),
    (NET.replace('subnet6 = "fd00:dead:beef:1::/64"', 'subnet6 = "fd00:dead:beef:1::/64"\nnat6 = "yes"'),
     "t.toml:6: networks.default.nat6: must be true or false, not a string"),
    (NET.replace('mode = "nat"', 'mode = "routed"').replace('subnet6 = "fd00:dead:beef:1::/64"', 'subnet6 = "fd00:dead:beef:1::/64"\nnat6 = true'),
     "t.toml:6: networks.default.nat6: unknown key (allowed: mode, bridge, stp, forward_delay, mtu, mac, subnet, gateway, dhcp, domain, dns_hosts, tftp_root, bootfile, spoof_protection, subnet6, gateway6, dhcp6, allow_unprivileged, bandwidth)"),
    ('[networks.a]\nmode = "nat"\nbridge = "br-a"\nsubnet = "10.1.0.0/24"\ngateway6 = "fd00::1"\n',
     "t.toml:5: networks.a.gateway6: needs subnet6 (the network's IPv6 prefix)"),
    (NET + '[networks.b]\nmode = "routed"\nbridge = "br-b"\nsubnet = "10.1.0.0/24"\nsubnet6 = "fd00:dead:beef:1::/64"\n',
     "t.toml:16: networks.b.subnet6: fd00:dead:beef:1::/64 overlaps networks.default.subnet6 fd00:dead:beef:1::/64"),
    (DUAL.replace('ip6 = "fd00:dead:beef:1::10"', 'ip6 = "fd00:dead:beef:2::10"'),
     "t.toml:15: guests.web.nics[0].ip6: fd00:dead:beef:2::10 is outside subnet6 fd00:dead:beef:1::/64"),
    (DUAL.replace('ip6 = "fd00:dead:beef:1::10"', 'ip6 = "fd00:dead:beef:1::1"'),
     "t.toml:15: guests.web.nics[0].ip6: fd00:dead:beef:1::1 is the gateway6 of networks.default"),
    (DUAL.replace('ip6 = "fd00:dead:beef:1::10"', 'ip6 = "192.168.122.10"'),
     "t.toml:15: guests.web.nics[0].ip6: 192.168.122.10 is IPv4; this key takes an IPv6 address"),
    (DUAL + '[guests.db]\n[[guests.db.nics]]\nnetwork = "default"\nip6 = "fd00:dead:beef:1::10"\n',
     "t.toml:19: guests.db.nics[0].ip6: fd00:dead:beef:1::10 is also the ip6 of guests.web.nics[0]"),
    (DUAL.replace("[networks.default.dhcp6]\nstart = \"fd00:dead:beef:1::100\"\nend = \"fd00:dead:beef:1::1ff\"\n", ""),
     "t.toml:12: guests.web.nics[0].ip6: a static ip6 needs [networks.default.dhcp6] (DHCPv6 hands it out)"),
    (DUAL.replace('subnet6 = "fd00:dead:beef:1::/64"\n', "").replace("[networks.default.dhcp6]\nstart = \"fd00:dead:beef:1::100\"\nend = \"fd00:dead:beef:1::1ff\"\n", ""),
     "t.toml:11: guests.web.nics[0].ip6: a static ip6 needs a network with subnet6 (networks.default has none)"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_rejected_with_message(text, expected):
    assert problems(text) == [expected]


def test_dns_hosts_take_ipv6_addresses_as_aaaa_records():
    from kvmnet.render import dnsmasq
    topo = load(DUAL.replace('subnet6 = "fd00:dead:beef:1::/64"\n', 'subnet6 = "fd00:dead:beef:1::/64"\n'
                             'domain = "lab"\ndns_hosts = { nas = "fd00:dead:beef:1::50", "nas4" = "192.168.122.50" }\n'))
    net = topo.network("default")
    assert net.dns_hosts == (("nas", IPv6Address("fd00:dead:beef:1::50")), ("nas4", IPv4Address("192.168.122.50")))
    assert dnsmasq.render_hosts(topo, net).splitlines()[:2] == ["fd00:dead:beef:1::50 nas nas.lab", "192.168.122.50 nas4 nas4.lab"]
