"""config/forwards.py's shortcut for the common forward shape builds exactly what the full
path builds, and leaves every other shape (and every problem) to the full path."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest
from helpers.shortcuts import load_both

from kvmnet.config import forwards

ROOT = Path(__file__).resolve().parents[2]
HEAD = '''name = "fw"
[networks.lan]
mode = "nat"
bridge = "kvfw0"
subnet = "10.9.0.0/24"
[guests.web]
[[guests.web.nics]]
network = "lan"
ip = "10.9.0.10"
[guests.dyn]
[[guests.dyn.nics]]
network = "lan"
'''
SHAPES = ['host_port = 80\nguest = "web"', 'proto = "udp"\nhost_port = 53\nguest = "web"\nguest_port = 5353',
          'host_port = 8000\nguest = "10.9.0.20"\nguest_port = 80', 'host_port = "9000-9001"\nguest = "web"',
          'host_port = 81\nhost_addr = "127.0.0.1"\nguest = "web"', 'host_port = true\nguest = "web"',
          'proto = "sctp"\nhost_port = 82\nguest = "web"', 'host_port = 83\nguest = "dyn"', 'host_port = 84\nguest = "nobody"',
          'host_port = 0\nguest = "web"', 'host_port = 85\nguest = "web"\nguest_port = 70000', 'host_port = 86\nguest = "web"\nextra = 1',
          'host_port = 80\nguest = "web"\nguest_port = 8080',
          # guests by address: a host of the subnet, and everything that is not one
          *[f'host_port = {87 + k}\nguest = "{a}"' for k, a in enumerate((
              "10.9.0.254", "10.9.0.2", "10.9.0.1", "10.9.0.0", "10.9.0.255", "10.8.0.5", "10.9.0.020", "10.9.0.256",
              "10.9.0", "fd00::5", "10.9.0.10 ", "+10.9.0.5", "10.9.0.1e", "０.9.0.5"))]]


def _load_both(text: str, monkeypatch):
    return load_both(text, "fw.toml", monkeypatch, forwards, "_plain_forwards", lambda items, *a: [None] * len(items))


@pytest.mark.parametrize("shape", SHAPES)
def test_each_forward_shape_loads_as_the_full_path_loads_it(shape, monkeypatch):
    quick, full = _load_both(HEAD + f"[[networks.lan.forwards]]\n{shape}\n", monkeypatch)
    assert quick == full


def test_all_shapes_together_load_as_the_full_path_loads_them(monkeypatch):
    text = HEAD + "".join(f"[[networks.lan.forwards]]\n{s.replace('= 80', '= 180')}\n" for s in SHAPES)
    quick, full = _load_both(text, monkeypatch)
    assert quick == full


def test_a_big_topology_loads_as_the_full_path_loads_it(monkeypatch):
    from bench.sections.scale import big_toml
    made = []
    plain = forwards._plain_forwards
    monkeypatch.setattr(forwards, "_plain_forwards", lambda *a: made.extend(f for f in plain(*a) if f) or plain(*a))
    quick, full = _load_both(big_toml("big", 4, 40, 400), monkeypatch)
    assert quick == full and sum(len(n.forwards) for n in quick.networks) == 400
    assert len(made) == 400  # every one of them took the shortcut


def test_the_shortcut_takes_a_host_address_and_leaves_everything_else():
    hosts = (int(IPv4Address("10.9.0.0")), int(IPv4Address("10.9.0.255")), int(IPv4Address("10.9.0.1")))
    assert forwards._literal_host("10.9.0.254", hosts) == IPv4Address("10.9.0.254")
    assert forwards._literal_host("10.9.0.2", hosts) == IPv4Address("10.9.0.2")
    for text in ("10.9.0.1", "10.9.0.0", "10.9.0.255", "10.8.0.5", "10.9.0.020", "10.9.0.256", "10.9.0", "fd00::5",
                 "10.9.0.10 ", "web"):
        assert forwards._literal_host(text, hosts) is None, text
    assert forwards._literal_host("10.9.0.254", None) is None  # not a plain nat network
