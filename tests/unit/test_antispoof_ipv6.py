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
