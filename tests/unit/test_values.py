"""config/values.py: the quick constructor and replace give the values the plain ones give."""

from ipaddress import IPv4Address, IPv4Network

import pytest

from kvmnet.config.values import evolve, maker
from kvmnet.model import Forward, Network, Nic, Topology
from kvmnet.valueclass import FrozenInstanceError, replace


def test_maker_builds_what_the_constructor_builds():
    fields = ("tcp", (80, 80), IPv4Address("10.0.0.2"), (8080, 8080), "web", None, 3, None)
    made = maker(Forward)(fields)
    assert made == Forward(*fields) and hash(made) == hash(Forward(*fields))
    assert type(made) is Forward and made.__dict__ == Forward(*fields).__dict__
    with pytest.raises(FrozenInstanceError):
        made.proto = "udp"


def test_evolve_is_replace():
    nic = Nic("n0", None, IPv4Address("10.0.0.2"))
    assert evolve(nic, mac="52:54:00:00:00:01", tap="t0") == replace(nic, mac="52:54:00:00:00:01", tap="t0")
    assert nic.mac is None  # the original is untouched
    with pytest.raises(TypeError):
        evolve(nic, no_such_field=1)


def test_evolve_drops_what_a_cached_property_kept():
    a, b = (Network(name, "nat", subnet=IPv4Network("10.0.0.0/24")) for name in ("a", "b"))
    topo = Topology("t", "t.toml", networks=(a,))
    assert topo.network("a") is a  # fills the cached index of the networks by name
    moved = evolve(topo, networks=(b,))
    assert moved.network("b") is b
    with pytest.raises(KeyError):
        moved.network("a")
