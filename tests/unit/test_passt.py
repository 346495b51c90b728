"""passt networks: what their keys load to, every validation rule with its message, the passt
command line each guest NIC gets and the -netdev stream QEMU gets."""

import textwrap
from ipaddress import IPv4Address, IPv4Interface, IPv6Address

import pytest

from helpers.configtext import load, problems
from kvmnet.errors import InputError
from kvmnet.render import passt
from kvmnet.render.qemu import HostOffers, guest_args

FULL = """\
[networks.pn]
mode = "passt"
address = "10.0.2.15/24"
gateway = "10.0.2.2"
address6 = "fd00::15"
gateway6 = "fd00::2"
dns = ["10.0.2.3", "fd00::3"]
search = ["example.org", "lab"]
dns_forward = "10.0.2.3"
map_gateway = false
mtu = 1500
[[networks.pn.forwards]]
proto = "tcp"
host_port = 8080
host_addr = "127.0.0.1"
guest = "web"
guest_port = 80
[[networks.pn.forwards]]
proto = "udp"
host_port = "5000-5001"
guest = "web"
guest_port = "6000-6001"
[[networks.pn.forwards]]
proto = "tcp"
host_port = 2222
guest = "db"
guest_port = 22
[guests.web]
[[guests.web.nics]]
network = "pn"
[guests.db]
[[guests.db.nics]]
network = "pn"
"""


def test_every_key_loads():
    p = load(FULL).network("pn").passt
    assert (p.ipv4, p.ipv6, p.address, p.gateway) == (True, True, IPv4Interface("10.0.2.15/24"), IPv4Address("10.0.2.2"))
    assert (p.address6, p.gateway6) == (IPv6Address("fd00::15"), IPv6Address("fd00::2"))
    assert p.dns == (IPv4Address("10.0.2.3"), IPv6Address("fd00::3")) and p.search == ("example.org", "lab")
    assert (p.dns_forward, p.map_gateway, p.mtu) == (IPv4Address("10.0.2.3"), False, 1500)


def test_each_guest_nic_gets_its_own_passt_with_its_own_forwards():
    topo = load(FULL)
    (web,) = passt.nics(topo, "web", "/run/kvmnet")
    assert web.socket == "/run/kvmnet/t/passt-kn-t-web-0/sock"
    assert passt.argv(topo, web, "/usr/bin/passt") == [
        "/usr/bin/passt", "--quiet", "--socket", web.socket, "--pid", "/run/kvmnet/t/passt-kn-t-web-0/pid",
        "--address", "10.0.2.15", "--netmask", "24", "--address", "fd00::15", "--gateway", "10.0.2.2",
        "--gateway", "fd00::2", "--dns-forward", "10.0.2.3", "--dns", "10.0.2.3", "--dns", "fd00::3",
        "--search", "example.org lab", "--no-map-gw", "--mtu", "1500",
        "--tcp-ports", "127.0.0.1/8080:80", "--udp-ports", "5000-5001:6000-6001"]
    (db,) = passt.nics(topo, "db", "/run/kvmnet")
    assert passt.argv(topo, db)[-2:] == ["--tcp-ports", "2222:22"]


def test_defaults_are_passts_own_and_empty_lists_switch_dns_off():
    topo = load("""\
        [networks.pn]
        mode = "passt"
        ipv6 = false
        dns = []
        search = []
        [guests.g]
        [[guests.g.nics]]
        network = "pn"
        """)
    (nic,) = passt.nics(topo, "g", "/s")
    assert passt.argv(topo, nic)[6:] == ["--ipv4-only", "--no-dhcp-dns", "--no-dhcp-search"]


def test_qemu_connects_to_the_nics_socket():
    topo = load(FULL)
    (args,) = guest_args(topo, topo.guest("web"), offers=HostOffers(state_root="/tmp/st"))
    assert args[:2] == ["-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=/tmp/st/t/passt-kn-t-web-0/sock"]
    with pytest.raises(InputError, match="passt network needs -netdev stream; use --syntax netdev"):
        guest_args(topo, topo.guest("web"), syntax="legacy")


def test_a_socket_path_too_long_is_refused():
    topo = load(FULL)
    with pytest.raises(InputError, match=r"guests.web.nics\[0\]: passt's socket .* is longer than 107 bytes"):
        passt.nics(topo, "web", "/" + "d" * 100)


@pytest.mark.parametrize("keys, message", [
    ('ipv4 = false\nipv6 = false', "t.toml:4: networks.pn.ipv6: ipv4 and ipv6 are both off: the guest would have no network"),
    ('address = "10.0.2.15"', "t.toml:3: networks.pn.address: '10.0.2.15' has no prefix length (like 10.0.2.15/24)"),
    ('address = "10.0.2.0/24"', "t.toml:3: networks.pn.address: 10.0.2.0/24 is not a host address in a /8-/30 subnet"),
    ('address = "10.0.2.15/24"\ngateway = "10.0.3.1"', "t.toml:4: networks.pn.gateway: 10.0.3.1 is outside the guest's subnet 10.0.2.0/24"),
    ('address = "10.0.2.15/24"\ngateway = "10.0.2.15"', "t.toml:4: networks.pn.gateway: 10.0.2.15 is the guest's own address"),
    ('ipv4 = false\ngateway = "10.0.2.2"', "t.toml:4: networks.pn.gateway: is IPv4, but ipv4 is off"),
    ('ipv6 = false\naddress6 = "fd00::5"', "t.toml:4: networks.pn.address6: is IPv6, but ipv6 is off"),
    ('address6 = "fd00::5/64"', "t.toml:3: networks.pn.address6: 'fd00::5/64' is not an IPv6 address (without a prefix)"),
    ('dns = ["1.2.3.4", "resolver"]', "t.toml:3: networks.pn.dns[1]: 'resolver' is not an IPv4 or IPv6 address"),
    ('search = ["bad domain"]', "t.toml:3: networks.pn.search[0]: 'bad domain' is not a DNS domain name"),
    ('mtu = 65521', "t.toml:3: networks.pn.mtu: 65521 is outside 68-65520"),
    ('mtu = 1200', "t.toml:3: networks.pn.mtu: 1200 is below IPv6's minimum 1280; set ipv6 = false for a smaller MTU"),
    ('subnet = "10.0.2.0/24"', "t.toml:3: networks.pn.subnet: unknown key"),
])
def test_bad_keys_are_refused_with_their_line(keys, message):
    got = problems('[networks.pn]\nmode = "passt"\n' + keys + "\n")
    assert any(message in p for p in got), got


def _forward(target: str) -> str:
    return textwrap.dedent(f"""\
        [networks.pn]
        mode = "passt"
        [[networks.pn.forwards]]
        proto = "tcp"
        host_port = 8080
        guest = "{target}"
        [networks.other]
        mode = "passt"
        [guests.web]
        [[guests.web.nics]]
        network = "pn"
        [guests.far]
        [[guests.far.nics]]
        network = "other"
        """)


@pytest.mark.parametrize("target, message", [
    ("10.0.2.15", "t.toml:6: networks.pn.forwards[0].guest: unknown guest '10.0.2.15' (on a passt network a forward names a guest: its own passt forwards the port)"),
    ("far", "t.toml:6: networks.pn.forwards[0].guest: guest 'far' has no NIC on network 'pn'"),
])
def test_a_forward_names_a_guest_on_the_network(target, message):
    assert message in problems(_forward(target))


def test_forwarded_host_ports_must_not_overlap_nat_forwards():
    text = FULL + textwrap.dedent("""\
        [networks.n]
        mode = "nat"
        bridge = "virbr9"
        subnet = "192.168.9.0/24"
        [[networks.n.forwards]]
        proto = "tcp"
        host_port = 8080
        guest = "192.168.9.10"
        """)
    assert any("tcp host port 8080 overlaps networks." in p for p in problems(text))
