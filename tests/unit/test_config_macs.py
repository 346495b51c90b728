"""MAC addresses in every common spelling load as one canonical string (kvmnet compares MACs as
strings: duplicates, taps' host-side MACs, dnsmasq hosts); unusable ones are refused by name."""

import pytest

from kvmnet import config
from kvmnet.errors import InputError

NET = '[networks.n]\nmode = "isolated"\nbridge = "br0"\n'


def nic(mac: str, guest: str = "a") -> str:
    return f'[guests.{guest}]\n[[guests.{guest}.nics]]\nnetwork = "n"\nmac = "{mac}"\n'


@pytest.mark.parametrize("spelling", ["52:54:00:ab:cd:ef", "52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef",
                                      "5254.00ab.cdef", "525400abcdef", "525400ABCDEF", " 52:54:00:ab:cd:ef "])
def test_every_spelling_is_canonical(spelling):
    topo = config.load_text(NET + nic(spelling), "t.toml")
    assert topo.guest("a").nics[0].mac == "52:54:00:ab:cd:ef"


def test_duplicates_found_across_spellings():
    with pytest.raises(InputError) as exc:
        config.load_text(NET + nic("5254.00AB.CDEF") + nic("52-54-00-ab-cd-ef", "b"), "t.toml")
    assert str(exc.value) == "t.toml:11: guests.b.nics[0].mac: 52:54:00:ab:cd:ef is also the MAC of guests.a.nics[0]"


@pytest.mark.parametrize("mac,reason", [
    ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is the broadcast MAC; a NIC needs a unicast one"),
    ("FFFF.FFFF.FFFF", "FFFF.FFFF.FFFF is the broadcast MAC; a NIC needs a unicast one"),
    ("01-00-5e-00-00-01", "01-00-5e-00-00-01 is a multicast MAC; a NIC needs a unicast one"),
    ("000000000000", "000000000000 is not a usable MAC (all zeros)"),
    # netaddr would zero-pad these short groups into some other MAC: a typo must not load
    ("5254.0012.345", "'5254.0012.345' is not a MAC address"),
    ("52540012345", "'52540012345' is not a MAC address"),
    ("52:54:0:12:34:56", "'52:54:0:12:34:56' is not a MAC address"),
    ("52:54:00:12:34:56:78", "'52:54:00:12:34:56:78' is not a MAC address"),
    ("52:54:00-12:34:56", "'52:54:00-12:34:56' is not a MAC address"),
    ("52 54 00 12 34 56", "'52 54 00 12 34 56' is not a MAC address"),
])
def test_unusable_macs_are_refused(mac, reason):
    with pytest.raises(InputError) as exc:
        config.load_text(NET + nic(mac), "t.toml")
    assert [str(p) for p in exc.value.problems] == [f"t.toml:7: guests.a.nics[0].mac: {reason}" + (
        " (like 52:54:00:12:34:56, 52-54-00-12-34-56 or 5254.0012.3456)" if "not a MAC" in reason else "")]


def test_a_bridge_mac_is_read_like_a_nic_mac():
    topo = config.load_text(NET + 'mac = "5254.00AB.CD01"\n', "t.toml")
    assert topo.network("n").mac == "52:54:00:ab:cd:01"
    assert config.load_text(NET, "t.toml").network("n").mac is None  # derived by the planner


@pytest.mark.parametrize("extra,expected", [
    ('mac = "01:00:5e:00:00:01"\n', "t.toml:4: networks.n.mac: 01:00:5e:00:00:01 is a multicast MAC; a NIC needs a unicast one"),
    ('mac = "52:54:00:ab:cd:ef"\n' + nic("52:54:00:ab:cd:ef"),
     "t.toml:8: guests.a.nics[0].mac: 52:54:00:ab:cd:ef is also the MAC of networks.n"),
])
def test_a_bridge_mac_is_checked_like_a_nic_mac(extra, expected):
    with pytest.raises(InputError) as exc:
        config.load_text(NET + extra, "t.toml")
    assert [str(p) for p in exc.value.problems] == [expected]


def test_bridge_mode_takes_the_uplinks_mac_so_it_has_no_mac_key():
    with pytest.raises(InputError) as exc:
        config.load_text('[networks.n]\nmode = "bridge"\nbridge = "br0"\nuplink = "eth0"\nmac = "52:54:00:ab:cd:ef"\n', "t.toml")
    assert str(exc.value).startswith("t.toml:5: networks.n.mac: unknown key")


def test_the_planner_gives_the_bridge_its_mac():
    from kvmnet.engine import plan
    from kvmnet.engine.record import Record
    from kvmnet.observed import Observed
    topo = config.load_text(NET + 'mac = "52:54:00:ab:cd:01"\n', "t.toml")
    steps = [a.do for a in plan.plan(topo, Observed.from_json({}), Record(topo.name), "/run/kvmnet/t")]
    assert [s.args["mac"] for s in steps if s.op == "bridge.add"] == ["52:54:00:ab:cd:01"]
