"""Default tap names are unique per topology (two topologies' guests `web` never collide), fit
in 15 bytes and stay readable; a tap name another kvmnet topology holds is named as such."""

from __future__ import annotations

import itertools
import textwrap

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine, naming
from kvmnet.errors import InputError
from kvmnet.ifname import IFNAMSIZ, problem


def write(tmp_path, name: str, bridge: str, subnet: str, extra: str = ""):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        [networks.lan]
        mode = "isolated"
        bridge = "{bridge}"
        subnet = "{subnet}"
        [guests.web]
        [[guests.web.nics]]
        network = "lan"
        """) + extra)
    return config.load(str(path))


def test_two_topologies_with_a_guest_web_both_apply(tmp_path):
    host, state = FakeHost(), str(tmp_path / "state")
    first = write(tmp_path, "first", "kvmiso0", "10.70.0.0/24")
    second = write(tmp_path, "second", "kvmiso1", "10.71.0.0/24")
    engine.apply(first, state, host=host)
    engine.apply(second, state, host=host)
    assert host.links_["kn-first-web-0"]["master"] == "kvmiso0"
    assert host.links_["kn-second-web-0"]["master"] == "kvmiso1"


def test_a_tap_held_by_another_topology_is_named(tmp_path):
    host, state = FakeHost(), str(tmp_path / "state")
    first = write(tmp_path, "first", "kvmiso0", "10.70.0.0/24")
    engine.apply(first, state, host=host)
    second = write(tmp_path, "second", "kvmiso1", "10.71.0.0/24", 'tap = "kn-first-web-0"\n')
    before = host.state()
    with pytest.raises(InputError) as exc:
        engine.apply(second, state, host=host)
    assert str(exc.value) == (f"{tmp_path / 'second.toml'}:8: guests.web.nics[0].tap: kn-first-web-0 is a tap of "
                              f"kvmnet topology first (applied from {tmp_path / 'first.toml'}); set another `tap =` "
                              "for this NIC")
    assert host.state() == before


def test_a_tap_nobody_made_is_still_foreign(tmp_path):
    host, state = FakeHost(), str(tmp_path / "state")
    host._add_link("kn-first-web-0", "tun")
    with pytest.raises(InputError) as exc:
        engine.apply(write(tmp_path, "first", "kvmiso0", "10.70.0.0/24"), state, host=host)
    assert str(exc.value).endswith("guests.web.nics[0].tap: kn-first-web-0 already exists on this host and kvmnet "
                                   "did not create it")


TOPOLOGIES = ["nat", "lab", "isolated", "natlab", "production", "a" * 24]
GUESTS = ["web", "db", "a", "web-1", "web1", "webserver", "b" * 32, "x-1-0"]


def test_every_form_fits_and_no_two_nics_share_a_name():
    names = {}
    for topology, guest, index in itertools.product(TOPOLOGIES, GUESTS, (0, 1, 9, 10, 63)):
        tap = naming.tap_name(topology, guest, index)
        assert len(tap.encode()) <= IFNAMSIZ and problem(tap) is None, tap
        assert names.setdefault(tap, (topology, guest, index)) == (topology, guest, index), tap
    assert len(names) == len(TOPOLOGIES) * len(GUESTS) * 5


def test_the_names_stay_readable():
    assert naming.tap_name("nat", "web", 0) == "kn-nat-web-0"
    assert naming.tap_name("isolated", "a", 1) == "kn-isolated-a-1"
    short = naming.tap_name("production", "web", 0)  # the topology as 4 hex digits, the guest kept
    assert short.startswith("kn") and short.endswith("-web-0") and len(short) == 12


@pytest.mark.parametrize("name", ["all", "default"])
def test_a_bridge_may_not_take_a_reserved_name(tmp_path, name):
    """`allow all` in qemu-bridge-helper's bridge.conf lets QEMU join any bridge at all; both names
    are the kernel's sysctl dirs (net/ipv4/conf/all, default)."""
    assert problem(name).startswith(f"{name!r} is reserved: ")
    with pytest.raises(InputError) as exc:
        write(tmp_path, "res", name, "10.72.0.0/24")
    assert f"networks.lan.bridge: {name!r} is reserved" in str(exc.value)
    assert problem("allx") is None and problem("default0") is None
