"""kvmnet graph: golden files for each format of each shipped topology (tests/data/graph/,
KVMNET_UPDATE_GOLDEN=1 rewrites them), Graphviz rendering every dot file, the Mermaid blocks'
structure, and --live's applied/drifted/not applied annotations against the in-memory host."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import live
from kvmnet.render import graph

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "graph"
SOURCES = sorted(ROOT.glob("topologies/*.toml"))
SUFFIX = {"dot": "dot", "mermaid": "mmd", "text": "txt"}
NAT = ROOT / "topologies" / "nat.toml"


def load(path: Path):
    return config.load_text(path.read_text(), path.name)


@pytest.mark.parametrize("fmt", graph.FORMATS)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_graph_matches_golden(source, fmt):
    text = graph.render(load(source), fmt)
    golden = GOLDEN / f"{source.stem}.{SUFFIX[fmt]}"
    if os.environ.get("KVMNET_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden.name} differs from its golden file"


# --live's marks in every format (golden nat-live.*): one object in each state
LIVE = {"network:default": "drifted", "nic:web:0": "applied", "nic:other:0": "not applied", "forwards:default": "applied"}


@pytest.mark.parametrize("fmt", graph.FORMATS)
def test_live_marks_match_golden(fmt, tmp_path):
    text = graph.render(load(NAT), fmt, LIVE)
    golden = GOLDEN / f"nat-live.{SUFFIX[fmt]}"
    if os.environ.get("KVMNET_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden.name} differs from its golden file"
    if fmt == "dot" and shutil.which("dot"):
        proc = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stderr) == (0, "")


def test_every_golden_file_has_a_topology():
    expected = {f"{s.stem}.{suffix}" for s in SOURCES for suffix in SUFFIX.values()}
    expected |= {f"nat-live.{suffix}" for suffix in SUFFIX.values()}
    assert {p.name for p in GOLDEN.iterdir()} == expected


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_dot_renders_with_graphviz(source, tmp_path):
    if not shutil.which("dot"):
        pytest.skip("Graphviz not installed (scripts/test installs it): apt-get install graphviz")
    proc = subprocess.run(["dot", "-Tsvg"], input=graph.to_dot(load(source)), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")  # graphviz warns on stderr about bad attributes
    assert proc.stdout.lstrip().startswith("<?xml") and "</svg>" in proc.stdout
    topo = load(source)
    for net in topo.networks:  # every network, guest and MAC is drawn
        assert f"network {net.name}" in proc.stdout
    for guest in topo.guests:
        assert f"guest {guest.name}" in proc.stdout
        assert all(nic.mac in proc.stdout for nic in guest.nics)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_mermaid_is_a_graph_lr_block_whose_edges_join_declared_nodes(source):
    lines = graph.to_mermaid(load(source)).splitlines()
    assert lines[0] == "graph LR"
    declared = {m.group(1) for line in lines if (m := re.match(r"  (\w+)(\[|\{|>)", line))}
    for line in lines[1:]:
        edge = re.match(r'  (\w+) (---|-\.->)\|"[^"]*"\| (\w+)$', line) or re.match(r'  (\w+) (---) (\w+)>', line)
        if edge:
            assert edge.group(1) in declared and (edge.group(3) in declared or edge.group(2) == "---"), line
        else:
            assert re.match(r'  \w+(\[\[?"[^"]*"\]\]?|\{"[^"]*"\})$', line), f"not a node or an edge: {line!r}"


def test_labels_are_escaped_for_each_format(tmp_path):
    odd = tmp_path / "odd.toml"
    odd.write_text('[networks.slirp]\nmode = "user"\ntftp = "/srv/a \\"b\\" <c>&d\\\\e"\n'
                   '[guests.g]\n[[guests.g.nics]]\nnetwork = "slirp"\n')
    topo = config.load(str(odd))
    assert 'tftp /srv/a \\"b\\" <c>&d\\\\e' in graph.to_dot(topo)
    assert "tftp /srv/a #quot;b#quot; #lt;c#gt;#amp;d\\e" in graph.to_mermaid(topo)


# ---------------------------------------------------------------- --live


@pytest.fixture
def host():
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")


def test_live_status_before_apply_after_apply_and_after_drift(host, tmp_path):
    topo = config.load(str(NAT))
    state = str(tmp_path / "state")
    everything = ("network:default", "forwards:default", "nic:web:0", "nic:other:0")
    assert live.status(topo, state, host) == dict.fromkeys(everything, "not applied")
    engine.apply(topo, state, host=host)
    assert live.status(topo, state, host) == dict.fromkeys(everything, "applied")
    host.links_["kn-nat-web-0"]["up"] = False
    host.dnsmasqs.clear()
    assert live.status(topo, state, host) == {"network:default": "drifted", "forwards:default": "applied",
                                              "nic:web:0": "drifted", "nic:other:0": "applied"}


def test_live_text_marks_each_object(host, tmp_path):
    topo = config.load(str(NAT))
    state = str(tmp_path / "state")
    engine.apply(topo, state, host=host)
    del host.links_["kn-nat-other-0"]
    text = graph.to_text(topo, live.status(topo, state, host))
    assert text.splitlines() == [
        "topology nat",
        "└── network default [applied]",
        "    ├── nat mode, bridge virbr0",
        "    ├── subnet 192.168.122.0/24, gateway 192.168.122.1",
        "    ├── dhcp 192.168.122.2-192.168.122.254 (1h)",
        "    ├── domain kvm.lan",
        "    ├── forward tcp 8080 -> web (192.168.122.10):80 [applied]",
        "    ├── guest web nic0 52:54:00:12:34:56 192.168.122.10 tap kn-nat-web-0 [applied]",
        "    └── guest other nic0 52:54:00:d5:ee:a8 tap kn-nat-other-0 [drifted]"]


def test_live_has_nothing_to_say_about_host_less_networks(host, tmp_path):
    topo = config.load(str(ROOT / "topologies" / "user.toml"))
    assert live.status(topo, str(tmp_path / "state"), host) == {}


def test_classify():
    assert live.classify(set(), set(), set()) is None
    assert live.classify({"a", "b"}, set(), set()) == "applied"
    assert live.classify({"a", "b"}, {"a", "b"}, set()) == "not applied"
    assert live.classify({"a", "b"}, {"a", "b"}, {"a"}) == "drifted"  # recorded, yet gone
    assert live.classify({"a", "b"}, {"a"}, set()) == "drifted"  # half there
