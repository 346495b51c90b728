"""On a real (namespaced) host: `kvmnet graph --live` marks what is applied and what drifted,
and the Vagrant lab's topology makes exactly the bridges its generated Vagrantfile lines name
(vagrant-libvirt would attach the VMs to them; no VM is booted here: no nested KVM, no box)."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "vagrant" / "lab" / "lab.toml"


def _marks(netns, path) -> list[str]:
    res = netns.kvmnet("graph", "--live", str(path))
    assert res.returncode == 0, res.stderr
    return [line.split("[", 1)[1].rstrip("]") for line in res.stdout.splitlines() if "[" in line]


def test_graph_live_follows_apply_drift_and_destroy(netns, topo_dir):
    topo = topo_dir / "isolated.toml"
    before = netns.snapshot()
    assert _marks(netns, topo) == ["not applied"] * 3  # the network, a's NIC, b's NIC
    assert netns.kvmnet("apply", "--quiet", str(topo)).returncode == 0
    assert _marks(netns, topo) == ["applied"] * 3
    netns.sh("ip link del kn-isolated-b-0")
    out = netns.kvmnet("graph", "--live", str(topo)).stdout
    assert "guest b nic0" in out and out.splitlines()[-1].endswith("tap kn-isolated-b-0 [drifted]")
    assert netns.kvmnet("destroy", str(topo)).returncode == 0
    assert netns.snapshot() == before


def test_the_vagrant_labs_bridges_are_what_its_vagrantfile_names(netns):
    before = netns.snapshot()
    assert netns.kvmnet("apply", "--quiet", str(LAB)).returncode == 0
    try:
        nics = json.loads(netns.kvmnet("vagrant", "--json", str(LAB)).stdout)["guests"]
        devs = {nic["dev"] for guest in nics.values() for nic in guest}
        assert devs == {"kvmlab-front", "kvmlab-back"}
        for dev in devs:
            link = json.loads(netns.run("ip", "-j", "-d", "link", "show", dev).stdout)[0]
            assert link["linkinfo"]["info_kind"] == "bridge" and "UP" in link["flags"]
        addrs = netns.run("ip", "-br", "addr").stdout
        assert "10.91.0.1/24" in addrs and "10.92.0.1/24" in addrs
        assert netns.kvmnet("check", "--quiet", str(LAB)).returncode == 0
        assert set(_marks(netns, LAB)) == {"applied"}
    finally:
        assert netns.kvmnet("destroy", str(LAB)).returncode == 0
    assert netns.snapshot() == before
