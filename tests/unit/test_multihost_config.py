"""[hosts], [networks.N.vxlan], gateway_host and guests' host: read into model.Overlay, and
every mistake reported as FILE:LINE: key: reason."""

from ipaddress import IPv4Address

import pytest

from kvmnet.config import load_text
from kvmnet.errors import InputError
from kvmnet.model import HostEntry, Vxlan

GOOD = """\
[hosts.h1]
underlay = "10.200.0.1"
[hosts.h2]
underlay = "10.200.0.2"

[networks.lab]
mode = "nat"
bridge = "kvb-lab"
subnet = "10.95.0.0/24"
gateway_host = "h2"
[networks.lab.vxlan]
vni = 4242

[guests.a]
host = "h1"
nics = [{ network = "lab" }]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        load_text(text, "t.toml")
    return str(exc.value).splitlines()


def test_the_multi_host_keys_are_read():
    topo = load_text(GOOD, "t.toml")
    ov = topo.overlay
    assert ov.hosts == (HostEntry("h1", IPv4Address("10.200.0.1")), HostEntry("h2", IPv4Address("10.200.0.2")))
    assert ov.vxlan("lab") == Vxlan(4242, "static", 4789, ("h1", "h2"), "h2")
    assert ov.guest_hosts == (("a", "h1"),)
    assert topo.network("lab").mode == "nat"


def test_a_file_without_hosts_has_no_overlay():
    assert load_text('[networks.n]\nmode = "isolated"\nbridge = "kb0"\n', "t.toml").overlay is None


def test_unknown_hosts_duplicate_underlays_and_vnis_are_reported_with_lines():
    text = GOOD.replace('underlay = "10.200.0.2"', 'underlay = "10.200.0.1"').replace(
        'gateway_host = "h2"', 'gateway_host = "h9"').replace('host = "h1"', 'host = "h7"')
    text += '\n[networks.b]\nmode = "isolated"\nbridge = "kvb-b"\n[networks.b.vxlan]\nvni = 4242\ncontrol = "bgp"\n'
    assert _problems(text) == [
        "t.toml:4: hosts.h2.underlay: 10.200.0.1 is already the underlay address of hosts.h1",
        "t.toml:10: networks.lab.gateway_host: unknown host 'h9' (the [hosts] table has h1)",
        "t.toml:15: guests.a.host: unknown host 'h7' (the [hosts] table has h1)",
        "t.toml:23: networks.b.vxlan.control: 'bgp' must be static or evpn",
    ]


def test_vnis_are_unique_and_guests_run_on_a_host_the_network_spans():
    text = GOOD.replace("vni = 4242", 'vni = 4242\nhosts = ["h2"]')
    text += '\n[networks.b]\nmode = "isolated"\nbridge = "kvb-b"\n[networks.b.vxlan]\nvni = 4242\n'
    assert _problems(text) == [
        "t.toml:17: guests.a.nics[0].network: networks.lab does not span host h1 (its vxlan hosts: h2)",
        "t.toml:23: networks.b.vxlan.vni: 4242 is already the VNI of networks.lab",
    ]


def test_a_guest_without_host_and_vxlan_without_hosts_are_refused():
    assert _problems(GOOD.replace('host = "h1"\n', "")) == [
        "t.toml:14: guests.a: needs `host` (one of h1, h2): the file describes several hosts"]
    no_hosts = GOOD[GOOD.index("[networks.lab]"):].replace('gateway_host = "h2"\n', "").replace('host = "h1"\n', "")
    assert _problems(no_hosts) == [
        "t.toml:5: networks.lab.vxlan: needs a [hosts] table naming every host and its underlay address"]


def test_a_bridge_mode_network_cannot_span_hosts():
    text = GOOD.replace('mode = "nat"\nbridge = "kvb-lab"\nsubnet = "10.95.0.0/24"\n',
                        'mode = "bridge"\nbridge = "kvb-lab"\nuplink = "eth0"\n').replace('gateway_host = "h2"\n', "")
    assert _problems(text) == ["t.toml:10: networks.lab.vxlan: a bridge network cannot span hosts (nat, routed or isolated can)"]
