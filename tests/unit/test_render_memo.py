"""render/memo.py: a renderer's answers kept for the last topology only, and never for another
value that happens to share a name or an id."""

from ipaddress import IPv4Address, IPv4Network

from kvmnet.config.values import evolve
from kvmnet.model import Dhcp, Guest, Network, Nic, Topology
from kvmnet.render import dnsmasq
from kvmnet.render.memo import each_network


def _topo(ip: str) -> Topology:
    net = Network("lab", "nat", "kvlab0", IPv4Network("10.0.0.0/24"), IPv4Address("10.0.0.1"),
                  dhcp=Dhcp(IPv4Address("10.0.0.100"), IPv4Address("10.0.0.200")))
    return Topology("t", "t.toml", (net,), (Guest("web", (Nic("lab", "52:54:00:00:00:01", IPv4Address(ip)),)),))


def test_each_network_renders_once_per_topology_and_network():
    calls = []
    render = each_network(lambda topo, net: calls.append(net.name) or f"{topo.name}/{net.name}")
    topo = _topo("10.0.0.5")
    other = evolve(topo.networks[0], name="wan")
    assert render(topo, topo.networks[0]) == render(topo, topo.networks[0]) == "t/lab"
    assert render(topo, other) == "t/wan" and calls == ["lab", "wan"]
    renamed = evolve(other, name="lab")  # another network of that name: rendered, not taken for it
    render(topo, renamed)
    assert calls == ["lab", "wan", "lab"]


def test_a_new_topology_is_rendered_anew():
    first, second = _topo("10.0.0.5"), _topo("10.0.0.6")
    assert "10.0.0.5" in dnsmasq.render_dhcp_hosts(first, first.networks[0])
    assert "10.0.0.6" in dnsmasq.render_dhcp_hosts(second, second.networks[0])
    assert "10.0.0.6 web" in dnsmasq.render_hosts(second, second.networks[0])
