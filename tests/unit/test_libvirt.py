"""libvirt network XML both ways, on a corpus written for it (tests/data/libvirt/*.xml):
each supported definition imports to its golden TOML (which loads), each unsupported one to its
golden error lines (FILE:LINE: element/path: reason); exports validate against libvirt's schema
(virt-xml-validate) and import(export(x)) plans exactly what x plans.
KVMNET_UPDATE_GOLDEN=1 rewrites the golden files; review the diff like code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from kvmnet import cli, config
from kvmnet.config import libvirt_xml as reader
from kvmnet.engine import plan
from kvmnet.engine.record import Record
from kvmnet.errors import InputError
from kvmnet.observed import Observed
from kvmnet.render import libvirt_xml as writer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "libvirt"
SUPPORTED = ["default", "full-nat", "routed", "open", "isolated", "bridge", "dual-stack"]
REFUSED = sorted(p.stem for p in CORPUS.glob("*.xml") if p.stem not in SUPPORTED)
OBSERVED = ROOT / "tests" / "data" / "plans" / "bridge-fresh" / "observed.json"  # a host with eth0


def _golden(path: Path, got: str) -> None:
    if os.environ.get("KVMNET_UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()


def _import(stem: str) -> str:
    return reader.import_text((CORPUS / f"{stem}.xml").read_text(), f"{stem}.xml")


def _errors(stem: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        _import(stem)
    return [str(p) for p in exc.value.problems]


def _steps(topo) -> list[str]:
    observed = Observed.from_json(json.loads(OBSERVED.read_text()))
    return [a.do.command() for a in plan.plan(topo, observed, Record(topo.name), f"/run/kvmnet/{topo.name}")]


@pytest.mark.parametrize("stem", SUPPORTED)
def test_supported_definitions_import_to_golden_toml_that_loads(stem):
    toml = _import(stem)
    _golden(CORPUS / f"{stem}.toml", toml)
    topo = config.load_text(toml, f"{stem}.toml")
    assert topo.networks and topo.networks[0].bridge


@pytest.mark.parametrize("stem", REFUSED)
def test_unsupported_definitions_are_refused_line_by_line(stem):
    _golden(CORPUS / f"{stem}.errors", "\n".join(_errors(stem)) + "\n")


def test_the_corpus_covers_every_element_both_ways():
    text = "".join(p.read_text() for p in CORPUS.glob("*.xml"))
    for needle in ("<forward/>", "mode='nat'", "mode='route'", "mode='open'", "mode='bridge' dev=", "<forward mode='bridge'/>",
                   "mode='passthrough'", "mode='hostdev'", "stp=", "delay=", "<mac address", "<mtu size", "<domain name",
                   "netmask=", "prefix=", "<range", "<lease expiry", "unit='hours'", "unit='seconds'", "<host mac",
                   "<host name", "<hostname>", "<forwarder", "<tftp root", "<bootp file", "family='ipv6'",
                   "<virtualport", "<portgroup", "<interface dev", "<pf dev", "<!DOCTYPE"):
        assert needle in text, needle


def test_an_ipv6_prefix_and_nat66_are_imported():
    topo = config.load_text(_import("dual-stack"), "dual-stack.toml")
    net = topo.network("dualstack")
    assert (str(net.subnet6), str(net.gateway6), net.nat6) == ("fd00:126::/64", "fd00:126::1", True)
    assert (str(net.dhcp6.start), str(net.dhcp6.end)) == ("fd00:126::100", "fd00:126::1ff")


def test_exact_lines_for_the_headline_refusals():
    errors = _errors("unsupported")
    assert not any(":37:" in line for line in errors)  # an IPv6 <ip> is imported (subnet6), not refused
    assert ("unsupported.xml:10: network/virtualport: not supported: Open vSwitch / 802.1Qbh virtual ports: "
            "kvmnet builds Linux bridges only") in errors
    assert _errors("doctype") == ["doctype.xml:2: DOCTYPE declarations are refused (entities could expand without bound)"]
    assert _errors("bridge-no-dev")[0].startswith("bridge-no-dev.xml:3: network/forward: bridge mode without dev='UPLINK'")


def test_problems_of_the_generated_topology_land_on_the_xml_attribute():
    assert "bad-values.xml:8: network/ip/dhcp/range/@end: 192.168.45.9 is outside subnet 192.168.44.0/24" in _errors("bad-values")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 40), st.text(max_size=8))
def test_any_damage_is_an_input_error_never_a_traceback(at, cut, junk):
    text = (CORPUS / "full-nat.xml").read_text()
    damaged = text[:at] + junk + text[at + cut:]
    try:
        config.load_text(reader.import_text(damaged, "x.xml"), "x.toml")
    except InputError:
        pass


@pytest.mark.parametrize("stem", SUPPORTED)
def test_export_validates_and_import_of_export_plans_the_same(stem, tmp_path):
    topo = config.load_text(_import(stem), f"{stem}.toml")
    net = topo.networks[0]
    assert writer.refusals(net) == []
    xml = writer.render(topo, net)
    if stem == "full-nat":
        _golden(CORPUS / "export-full-nat.xml.out", xml)
    again = config.load_text(reader.import_text(xml, "exported.xml"), "again.toml")
    assert _steps(again) == _steps(topo)
    if shutil.which("virt-xml-validate") is None:
        pytest.skip("virt-xml-validate missing (Debian package libvirt-clients; scripts/test installs it)")
    (tmp_path / "out.xml").write_text(xml)
    res = subprocess.run(["virt-xml-validate", str(tmp_path / "out.xml"), "network"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_export_refuses_what_libvirt_cannot_say():
    topo = config.load(str(ROOT / "topologies" / "nat.toml"))
    assert writer.refusals(topo.network("default")) == [
        (("networks", "default", "forwards", 0), "libvirt networks have no port forwards (libvirt users add them with "
                                                  "hooks); export the network without them")]


def test_cli_import_writes_a_file_that_validates_and_export_reads_it(tmp_path):
    runner = CliRunner()
    out, xml = tmp_path / "lab.toml", tmp_path / "lab.xml"
    res = runner.invoke(cli.main, ["import", "libvirt", str(CORPUS / "full-nat.xml"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text() == (CORPUS / "full-nat.toml").read_text().replace(
        "imported from full-nat.xml", f"imported from {CORPUS / 'full-nat.xml'}")
    assert runner.invoke(cli.main, ["validate", str(out)]).exit_code == 0
    res = runner.invoke(cli.main, ["export", "libvirt", str(out), "--network", "lab", "-o", str(xml)])
    assert res.exit_code == 0, res.output
    assert xml.read_text().startswith("<network>\n  <name>lab</name>\n")


def test_cli_import_refusal_is_exit_2_with_one_line_each():
    res = CliRunner().invoke(cli.main, ["import", "libvirt", str(CORPUS / "passthrough.xml")])
    assert res.exit_code == 2
    assert res.output == (f"{CORPUS / 'passthrough.xml'}:3: network/forward: <forward mode='passthrough'>: macvtap and "
                          "hostdev modes attach guests to a device directly; kvmnet attaches them to bridges only "
                          "(no direct mode yet)\n")


def test_cli_export_refusals_are_exit_2(tmp_path):
    runner = CliRunner()
    nat = ROOT / "topologies" / "nat.toml"
    res = runner.invoke(cli.main, ["export", "libvirt", str(nat)])
    assert res.exit_code == 2
    assert res.output == (f"{nat}:16: networks.default.forwards[0]: libvirt networks have no port forwards (libvirt "
                          "users add them with hooks); export the network without them\n")
    two = tmp_path / "two.toml"
    two.write_text('[networks.a]\nmode = "isolated"\nbridge = "br-a"\n[networks.b]\nmode = "isolated"\nbridge = "br-b"\n')
    res = runner.invoke(cli.main, ["export", "libvirt", str(two)])
    assert (res.exit_code, res.output) == (2, f"{two}: 2 bridged networks (a, b); choose one with --network\n")
    res = runner.invoke(cli.main, ["export", "libvirt", str(two), "--network", "c"])
    assert (res.exit_code, res.output) == (2, f"{two}: no bridged network 'c' (bridged: a, b)\n")
