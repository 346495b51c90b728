"""`--host NAME` and host auto-detection on the command line (fake host): `plan` says which
host it decided it is; a file whose hosts are none of this host's is exit 2 with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.fakehost import FakeHost

from kvmnet import cli
from kvmnet.host import system

THREE = str(Path(__file__).resolve().parents[1] / "data" / "multihost" / "three.toml")


@pytest.fixture
def host(monkeypatch):
    monkeypatch.delenv("KVMNET_HOST", raising=False)
    fake = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["10.200.0.2/24", "10.200.0.3/24"])
    monkeypatch.setattr(system, "default", lambda: fake)
    return fake


def run(tmp_path, *args):
    return CliRunner().invoke(cli.main, ["--state-dir", str(tmp_path), *args])


def test_plan_names_the_host_given_by_host_option(host, tmp_path):
    out = run(tmp_path, "plan", "--host", "h3", THREE)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].startswith(f"multihost: ") and f"to apply {THREE} on host h3 (firewall:" in out.output
    assert "create VXLAN kvx4242 (VNI 4242, local 10.200.0.3, port 4789, mtu 1450) on bridge kvb-lab" in out.output
    doc = json.loads(run(tmp_path, "plan", "--json", "--host", "h2", THREE).output)
    assert doc["host"] == "h2"


def test_two_local_underlays_need_the_host_option(host, tmp_path):
    out = run(tmp_path, "plan", THREE)
    assert (out.exit_code, out.output) == (2, f"{THREE}: several [hosts] underlay addresses are local (h2, h3): "
                                              "say --host NAME\n")


def test_the_host_is_found_by_its_underlay_address(host, tmp_path):
    host.addrs_["eth0"].discard("10.200.0.3/24")
    out = run(tmp_path, "plan", THREE)
    assert out.exit_code == 0 and f"on host h2 (firewall:" in out.output


def test_host_option_on_a_single_host_file_is_refused(host, tmp_path):
    single = tmp_path / "one.toml"
    single.write_text('[networks.n]\nmode = "isolated"\nbridge = "kb0"\n')
    out = run(tmp_path, "check", "--host", "h1", str(single))
    assert (out.exit_code, out.output) == (2, f"{single}: --host h1: the file has no [hosts] table (it describes one host)\n")


def test_status_json_shows_bgp_sessions_and_remote_macs_per_network(host, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.cli_common, "is_root", lambda: True)
    evpn = tmp_path / "evpn.toml"
    evpn.write_text(Path(THREE).read_text().replace('control = "static"', 'control = "evpn"'))
    assert run(tmp_path, "apply", "--host", "h2", str(evpn)).exit_code == 0
    host.remote_macs = lambda dev: [{"mac": "52:54:00:12:34:56", "dst": "10.200.0.3", "extern_learn": True}]
    doc = json.loads(run(tmp_path, "status", "--json").output)
    assert doc["topologies"][0]["overlay"] == {
        "networks": {"lab": {"vxlan": "kvx4242", "vni": 4242, "present": True,
                             "remote_macs": [{"mac": "52:54:00:12:34:56", "dst": "10.200.0.3", "extern_learn": True}]}},
        "bgp": [{"peer": "10.200.0.1", "state": "Established", "uptime": "00:00:01", "prefixes": 1},
                {"peer": "10.200.0.3", "state": "Established", "uptime": "00:00:01", "prefixes": 1}]}
    text = run(tmp_path, "status").output
    assert "; BGP 2/2 established; lab: VNI 4242, 1 remote MAC(s)" in text


def test_run_refuses_a_guest_of_another_host(host, tmp_path):
    out = run(tmp_path, "run", "--dry-run", "--host", "h2", THREE, "web")
    assert (out.exit_code, out.output) == (2, f"{THREE}:33: guests.web.host: guest web runs on host h3; this host is h2\n")
    ok = run(tmp_path, "run", "--dry-run", "--host", "h3", THREE, "web")
    assert ok.exit_code == 0 and "would run" in ok.output


def test_host_option_exists_when_kvmnet_runs_as_a_program(tmp_path):
    """`python -m kvmnet.cli` runs main() at the end of cli.py: --host must be there by then."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-m", "kvmnet.cli", "--state-dir", str(tmp_path), "plan", "--host", "h9", THREE],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(root)), cwd=tmp_path)
    assert (res.returncode, res.stderr) == (2, f"{THREE}: --host h9: not one of the file's hosts (h1, h2, h3)\n")


def test_validate_names_the_hosts_and_the_stretched_networks(tmp_path):
    out = run(tmp_path, "validate", THREE)
    assert out.exit_code == 0
    assert out.output.splitlines()[0] == (f"{THREE}: file ok: topology multihost; networks: lab (nat, VXLAN 4242 static "
                                          "over h1 h2 h3); hosts: h1, h2, h3; guests: 2")
