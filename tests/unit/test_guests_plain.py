"""config/guests.py's shortcut for the common guest shape (NICs with a network and maybe a plain
IPv4 address) builds exactly what the full path builds, and leaves every other shape (and
every problem) to the full path."""

from __future__ import annotations

import pytest
from helpers.shortcuts import load_both

from kvmnet.config import guests

HEAD = '''name = "gp"
[networks.lan]
mode = "nat"
bridge = "kvgp0"
subnet = "10.9.0.0/24"
[networks.lab]
mode = "isolated"
bridge = "kvgp1"
subnet = "10.8.0.0/24"
'''
# the NIC tables of guest "g" (TOML lines each); plain shapes and their near misses
SHAPES = [[], ['network = "lan"'], ['network = "lan"\nip = "10.9.0.10"'],
          ['network = "lan"\nip = "10.9.0.10"', 'network = "lab"\nip = "10.8.0.10"'], ['network = "lan"', 'network = "lan"'],
          ['network = "lan"\nip = "10.9.0.010"'], ['network = "lan"\nip = "10.9.0.256"'], ['network = "lan"\nip = "fd00::1"'],
          ['network = "lan"\nip = "10.8.0.10"'], ['network = "lan"\nip = "10.9.0.1"'], ['network = "lan"\nip = 5'],
          ['network = "nowhere"'], ['network = "la n"'], ['network = 7'], ['ip = "10.9.0.10"'],
          ['network = "lan"\nmac = "52:54:00:00:00:01"'], ['network = "lan"\nmodel = "e1000"'], ['network = "lan"\ntap = "tp0"'],
          ['network = "lan"\nvhost = "off"'], ['network = "lan"\nip6 = "fd00::5"'], ['network = "lan"\nextra = 1'],
          ['network = "lan"\nip = "10.9.0.10"', 'network = "lan"\nip = "10.9.0.10"']]  # one address twice


def _text(nics: list[str], extra: str = "") -> str:
    return HEAD + f"[guests.g]\n{extra}" + "".join(f"[[guests.g.nics]]\n{n}\n" for n in nics)


def _load_both(text: str, monkeypatch):
    return load_both(text, "gp.toml", monkeypatch, guests, "_plain_guest")


@pytest.mark.parametrize("nics", SHAPES)
def test_each_guest_shape_loads_as_the_full_path_loads_it(nics, monkeypatch):
    quick, full = _load_both(_text(nics), monkeypatch)
    assert quick == full


@pytest.mark.parametrize("extra", ['memory = 1024\n', 'nics = []\n', 'nics = "lan"\n', 'cpus = 0\n'])
def test_guest_keys_besides_nics_take_the_full_path(extra, monkeypatch):
    quick, full = _load_both(_text(['network = "lan"'] if "nics =" not in extra else [], extra), monkeypatch)
    assert quick == full


def test_the_shortcut_takes_the_common_shape_and_leaves_the_rest():
    assert guests._plain_guest("g", {"nics": [{"network": "lan", "ip": "10.9.0.10"}]}).nics[0].ip.packed == bytes([10, 9, 0, 10])
    for raw in ({"nics": [{"network": "lan", "mac": "52:54:00:00:00:01"}]}, {"nics": [{"ip": "10.9.0.1"}]},
                {"memory": 512}, {"nics": [{"network": "lan", "ip": "10.9.0.01"}]}, []):
        assert guests._plain_guest("g", raw) is None


def test_a_big_topology_loads_as_the_full_path_loads_it(monkeypatch):
    from bench.sections.scale import big_toml
    quick, full = _load_both(big_toml("big", 4, 40, 400), monkeypatch)
    assert quick == full and len(quick.guests) == 40
