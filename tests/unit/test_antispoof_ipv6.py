"""spoof_protection's IPv6 half (render/nft6.py): the addresses a guest may use, checked
against netaddr's EUI-64, and the rules they become (the namespace test proves them)."""

from ipaddress import IPv6Address, IPv6Network

import netaddr
import pytest

from kvmnet.model import Dhcp6, Network, Nic
from kvmnet.render import nft6


@pytest.mark.parametrize("mac", ["52:54:00:12:34:56", "00:16:3e:ff:00:01", "fe:ff:ff:ff:ff:ff", "02:00:00:00:00:00"])
def test_eui64_matches_netaddr(mac):
    eui = netaddr.EUI(mac)
    assert nft6.eui64(mac, IPv6Network("fe80::/64")) == IPv6Address(str(eui.ipv6_link_local()))
    assert nft6.eui64(mac, IPv6Network("fd00:71::/64")) == IPv6Address(str(eui.ipv6(0xfd000071 << 96)))


def net(**kw) -> Network:
    return Network("n", "nat", bridge="br", subnet6=IPv6Network("fd00:71::/64"), spoof_protection=True, **kw)


def test_static_ip6_or_else_the_dhcp6_range():
    nic = Nic("n", "52:54:00:71:00:10", tap="t0", ip6=IPv6Address("fd00:71::10"))
    ranged = net(dhcp6=Dhcp6(IPv6Address("fd00:71::100"), IPv6Address("fd00:71::1ff"), "1h"))
    rules = nft6.antispoof_rules(ranged, nic)
    assert rules[0] == 'iifname "t0" ether type ip6 ip6 saddr != { ::, fe80::5054:ff:fe71:10, fd00:71::5054:ff:fe71:10, fd00:71::10 } drop'
    assert rules[1] == ('iifname "t0" icmpv6 type nd-neighbor-advert @th,64,128 != { 0xfe80000000000000505400fffe710010, '
                        '0xfd00007100000000505400fffe710010, 0xfd000071000000000000000000000010 } drop')
    assert rules[2] == 'iifname "t0" icmpv6 type { nd-router-advert, nd-redirect } drop'
    roamer = Nic("n", "52:54:00:71:00:12", tap="t1")
    assert nft6.own_addresses(ranged, roamer)[-1] == (IPv6Address("fd00:71::100"), IPv6Address("fd00:71::1ff"))
    assert "fd00:71::100-fd00:71::1ff }" in nft6.antispoof_rules(ranged, roamer)[0]


def test_link_local_only_without_a_prefix():
    plain = Network("n", "nat", bridge="br", spoof_protection=True)
    assert nft6.own_addresses(plain, Nic("n", "52:54:00:71:00:10", tap="t0")) == [(IPv6Address("fe80::5054:ff:fe71:10"),) * 2]


ROAMING6 = """\
name = "r6"
[networks.n]
mode = "nat"
bridge = "br"
subnet = "10.71.0.0/24"
subnet6 = "fd00:71::/64"
spoof_protection = true
[networks.n.dhcp6]
start = "fd00:71::100"
end = "fd00:71::1ff"
[[guests.held.nics]]
network = "n"
mac = "52:54:00:71:00:10"
tap = "t-held"
ip = "10.71.0.10"
ip6 = "fd00:71::180"
[[guests.outside.nics]]
network = "n"
mac = "52:54:00:71:00:11"
tap = "t-out"
ip6 = "fd00:71::11"
[[guests.roamer.nics]]
network = "n"
mac = "52:54:00:71:00:12"
tap = "t-roam"
"""


def test_a_guest_leasing_from_the_range_cannot_take_a_static_ip6_inside_it():
    from kvmnet.config.loader import load_text
    from kvmnet.render.nft import render
    text = render(load_text(ROAMING6, "r6.toml"), "kvmnet_r6").text
    # only the static ip6 inside the range: one outside it is refused by the range check already
    assert "set claimed6_0 {\n\t\ttype ipv6_addr\n\t\telements = {\n\t\t\tfd00:71::180\n\t\t}" in text
    assert "set claimed6na_0 {\n\t\ttypeof @th,64,128\n\t\telements = {\n\t\t\t0xfd000071000000000000000000000180\n\t\t}" in text
    for tap, expected in (("t-roam", True), ("t-held", False), ("t-out", False)):
        assert (f'iifname "{tap}" ether type ip6 ip6 saddr @claimed6_0 ' in text) is expected, tap
        assert (f'iifname "{tap}" icmpv6 type nd-neighbor-advert @th,64,128 @claimed6na_0 ' in text) is expected, tap
    # its own fixed addresses (link-local, SLAAC) stay its own, should the set hold them
    assert ('iifname "t-roam" ether type ip6 ip6 saddr @claimed6_0 ip6 saddr != '
            '{ fe80::5054:ff:fe71:12, fd00:71::5054:ff:fe71:12 } drop') in text
    # "outside" roams in IPv4 (no ip): it may not take held's 10.71.0.10 nor the gateway
    assert 'iifname "t-out" ether type ip ip saddr @claimed0 drop' in text
    assert "set claimed0 {\n\t\ttype ipv4_addr\n\t\telements = {\n\t\t\t10.71.0.1,\n\t\t\t10.71.0.10\n\t\t}" in text


def test_no_claimed6_sets_without_a_static_ip6_in_the_range():
    from kvmnet.config.loader import load_text
    from kvmnet.render.nft import render
    text = render(load_text(ROAMING6.replace('ip6 = "fd00:71::180"', 'ip6 = "fd00:71::80"'), "r6.toml"), "kvmnet_r6").text
    assert "claimed6" not in text


def test_a_range_wide_enough_to_hold_slaac_addresses_claims_the_others_but_not_ones_own():
    """A guest leasing from a range that holds EUI-64 addresses could send from another guest's
    SLAAC address; the set holds every guest's, and each roamer's rule exempts its own."""
    from kvmnet.config.loader import load_text
    from kvmnet.render.nft import render
    wide = ROAMING6.replace('start = "fd00:71::100"\nend = "fd00:71::1ff"',
                            'start = "fd00:71::100"\nend = "fd00:71::ffff:ffff:ffff:ffff"')
    text = render(load_text(wide, "r6.toml"), "kvmnet_r6").text
    body = text.split("set claimed6_0 {", 1)[1].split("}", 2)[0]
    assert [l.strip().rstrip(",") for l in body.splitlines() if l.strip().startswith("fd00")] == [
        "fd00:71::5054:ff:fe71:10", "fd00:71::180", "fd00:71::5054:ff:fe71:11", "fd00:71::5054:ff:fe71:12"]
    assert ('iifname "t-roam" ether type ip6 ip6 saddr @claimed6_0 ip6 saddr != '
            '{ fe80::5054:ff:fe71:12, fd00:71::5054:ff:fe71:12 } drop') in text
