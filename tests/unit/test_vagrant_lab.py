"""The Vagrant lab whose networks kvmnet makes (vagrant/lab/), and `kvmnet vagrant`, which keeps
the lab's Vagrantfile and its topology from disagreeing. (`vagrant validate` of the lab's
Vagrantfile is in test_vagrant.py, with every other Vagrantfile.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_vagrant import ruby_code

from kvmnet import config
from kvmnet.render import vagrant

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "vagrant" / "lab"
GENERATED = LAB / "kvmnet-networks.rb"


def kvmnet(*args, cwd=LAB) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "kvmnet.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_generated_networks_file_is_what_kvmnet_vagrant_prints_now():
    res = kvmnet("vagrant", "lab.toml")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == GENERATED.read_text(), (
        "vagrant/lab/kvmnet-networks.rb is stale: cd vagrant/lab && kvmnet vagrant lab.toml -o kvmnet-networks.rb")


# Ruby stand-in for a Vagrant machine's `vm`: records each vm.network call as JSON.
RECORDER = """
require "json"
class RecordingVm
  attr_reader :calls
  def initialize; @calls = []; end
  def network(type, **opts); @calls << {"type" => type.to_s}.merge(opts.transform_keys(&:to_s)); end
end
require_relative ARGV[0]
out = {}
KVMNET_GUESTS.each { |g| vm = RecordingVm.new; kvmnet_networks(vm, g); out[g] = vm.calls }
begin
  kvmnet_networks(RecordingVm.new, "nobody")
rescue ArgumentError => e
  out["error"] = e.message
end
puts JSON.generate(out)
"""


def test_the_lab_vms_get_the_topologys_bridges_macs_and_addresses(tmp_path):
    """Evaluate the generated Ruby as Vagrant would, and compare every NIC with lab.toml."""
    if not shutil.which("ruby"):
        pytest.skip("ruby not installed (it comes with vagrant)")
    script = tmp_path / "record.rb"
    script.write_text(RECORDER)
    proc = subprocess.run(["ruby", str(script), str(GENERATED)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen.pop("error") == "kvmnet: no guest nobody in topology vagrant_lab"
    topo = config.load(str(LAB / "lab.toml"))
    expected = {}
    for guest in topo.guests:
        expected[guest.name] = []
        for nic in guest.nics:
            net = topo.network(nic.network)
            call = {"type": "public_network", "dev": net.bridge, "type_": "bridge", "mac": nic.mac, "model_type": "virtio"}
            if nic.ip:
                call.update(ip=str(nic.ip), netmask=str(net.subnet.netmask))
            expected[guest.name].append(call)
    for calls in seen.values():  # the `type:` option and the network type share a key in Ruby's view
        for call in calls:
            call["type_"] = call.pop("type")
            call["type"] = "public_network"
    assert seen == expected
    assert list(seen) == ["web", "db", "client"] and len(seen["web"]) == 2


def test_the_lab_vagrantfile_loads_the_generated_file_and_wraps_vagrant_in_kvmnet():
    code = ruby_code((LAB / "Vagrantfile").read_text())
    assert re.search(r'^require_relative "kvmnet-networks"$', code, re.M)
    assert 'TOPOLOGY = File.join(__dir__, "lab.toml")' in code
    up = re.search(r"config\.trigger\.before :up do \|(\w+)\|(.*?)^  end", code, re.M | re.S)
    assert up and re.search(r'system\(\*AS_ROOT, KVMNET, "apply", "--quiet", TOPOLOGY, exception: true\)', up.group(2))
    down = re.search(r"config\.trigger\.after :destroy do \|(\w+)\|(.*?)^  end", code, re.M | re.S)
    assert down and "env.active_machines.empty?" in down.group(2)
    assert re.search(r'system\(\*AS_ROOT, KVMNET, "destroy", TOPOLOGY, exception: true\)', down.group(2))
    assert re.search(r"KVMNET_GUESTS\.each do \|name\|\s+config\.vm\.define name do \|node\|(.*?)kvmnet_networks\(node\.vm, name\)",
                     code, re.S)
    assert not re.search(r"https?://|box_url", code)


def test_the_lab_topology_validates():
    res = kvmnet("validate", "lab.toml")
    assert (res.returncode, res.stdout) == (0, "lab.toml: file ok: topology vagrant_lab; networks: front (nat), back (isolated); "
                                            "guests: 3\n  run `kvmnet plan lab.toml` to check it against this host\n")


# ---------------------------------------------------------------- the renderer


def test_nics_on_networks_without_a_bridge_are_named_not_dropped():
    topo = config.load(str(ROOT / "topologies" / "user.toml"))
    assert vagrant.as_json(topo) == {"topology": "user", "guests": {"devbox": [
        {"network": "slirp", "nic": 0, "skipped": "user network: no bridge for libvirt to attach to"}]}}
    assert '    # nic0 on slirp: user network: no bridge for libvirt to attach to\n' in vagrant.to_ruby(topo, "user.toml")


def test_ruby_strings_cannot_interpolate_or_break_out():
    assert vagrant._ruby('a"b\\c#{x}') == '"a\\"b\\\\c\\#{x}"'


def test_cli_vagrant_json_and_output_file(tmp_path):
    res = kvmnet("vagrant", "--json", "lab.toml")
    doc = json.loads(res.stdout)
    assert doc["version"] == 1 and doc["topology"] == "vagrant_lab"
    assert doc["guests"]["db"] == [{"network": "back", "nic": 0, "dev": "kvmlab-back", "type": "bridge",
                                    "mac": "52:54:00:92:00:20", "model_type": "virtio", "ip": "10.92.0.20",
                                    "netmask": "255.255.255.0"}]
    out = tmp_path / "nets.rb"
    res = kvmnet("vagrant", "lab.toml", "-o", str(out))
    assert (res.returncode, res.stdout) == (0, "")
    assert out.read_text() == GENERATED.read_text()


def test_cli_vagrant_of_a_bad_file_is_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[networks.x]\nmode = "nat"\n')
    res = kvmnet("vagrant", str(bad))
    assert (res.returncode, res.stdout, res.stderr) == (
        2, "", f"{bad}:1: networks.x.bridge: is required\n{bad}:1: networks.x.subnet: is required\n")
