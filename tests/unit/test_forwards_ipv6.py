"""IPv6 port forwards: which families a forward covers (config/forwards.py) and the ip6 DNAT
maps they become in kvmnet's inet table (render/nft.py, nft6.py). Refusals: tests/data/bad/."""

import textwrap
from ipaddress import IPv4Address, IPv6Address

from kvmnet import config
from kvmnet.render import nft

TOPO = """\
[networks.default]
mode = "nat"
bridge = "virbr0"
subnet = "192.168.122.0/24"
subnet6 = "fd00:7::/64"
nat6 = {nat6}
[networks.default.dhcp]
start = "192.168.122.100"
end = "192.168.122.199"
[networks.default.dhcp6]
start = "fd00:7::100"
end = "fd00:7::1ff"
[guests.web]
[[guests.web.nics]]
network = "default"
ip = "192.168.122.10"
ip6 = "fd00:7::10"
[[networks.default.forwards]]
host_port = 8080
guest = "web"
guest_port = 80
"""


def forwards(text: str, nat6: bool):
    return config.load_text(textwrap.dedent(text.format(nat6=str(nat6).lower())), "t.toml").network("default").forwards


def test_no_host_addr_covers_both_families_with_nat6_and_ipv4_only_on_a_routed_prefix():
    (both,) = forwards(TOPO, nat6=True)
    assert (both.guest_ip, both.guest_ip6) == (IPv4Address("192.168.122.10"), IPv6Address("fd00:7::10"))
    (routed,) = forwards(TOPO, nat6=False)  # the guest's ip6 is reached directly: nothing to translate
    assert (routed.guest_ip, routed.guest_ip6) == (IPv4Address("192.168.122.10"), None)


def test_host_addr_picks_its_family():
    v6 = TOPO + 'host_addr = "2001:db8::5"\n'
    (f,) = forwards(v6, nat6=True)
    assert (f.guest_ip, f.guest_ip6, f.host_addr) == (None, IPv6Address("fd00:7::10"), IPv6Address("2001:db8::5"))
    (f,) = forwards(TOPO + 'host_addr = "192.0.2.5"\n', nat6=True)
    assert (f.guest_ip, f.guest_ip6) == (IPv4Address("192.168.122.10"), None)
    (f,) = forwards(TOPO.replace('guest = "web"', 'guest = "fd00:7::20"'), nat6=True)
    assert (f.guest_ip, f.guest_ip6, f.guest) == (None, IPv6Address("fd00:7::20"), None)


def test_ipv6_forwards_become_ip6_dnat_maps():
    text = textwrap.dedent(TOPO.format(nat6="true")) + 'host_addr = "2001:db8::5"\n' + textwrap.dedent("""\
        [[networks.default.forwards]]
        proto = "udp"
        host_port = "5000-5001"
        guest = "web"
        guest_port = "6000-6001"
        """)
    rules = nft.render(config.load_text(text, "t.toml"), "kvmnet_t")
    assert "\t\t\t2001:db8::5 . tcp . 8080 : fd00:7::10 . 80\n" in rules.text
    assert "\t\t\tudp . 5000 : fd00:7::10 . 6000,\n\t\t\tudp . 5001 : fd00:7::10 . 6001\n" in rules.text
    assert "\t\t\tudp . 5000 : 192.168.122.10 . 6000,\n" in rules.text  # and IPv4 for the one without host_addr
    assert "tcp . 8080 : 192.168.122.10" not in rules.text
    assert rules.elements == {"fwd_any": 2, "fwd6_any": 2, "fwd6_addr": 1}
    for rule in ("fib daddr type local dnat ip6 to meta l4proto . th dport map @fwd6_any",
                 "dnat ip6 to ip6 daddr . meta l4proto . th dport map @fwd6_addr",
                 'oifname "virbr0" ip6 saddr fd00:7::/64 ip6 daddr fd00:7::/64 ct status dnat masquerade'):
        assert rules.text.count(rule) == (1 if "masquerade" in rule else 2), rule


def test_graph_names_both_addresses_and_brackets_an_ipv6_host_addr():
    from kvmnet.render.graph import forward_words
    (both,) = forwards(TOPO, nat6=True)
    assert forward_words(both) == "tcp 8080 -> web (192.168.122.10, fd00:7::10):80"
    (v6,) = forwards(TOPO + 'host_addr = "2001:db8::5"\n', nat6=True)
    assert forward_words(v6) == "tcp [2001:db8::5]:8080 -> web (fd00:7::10):80"
