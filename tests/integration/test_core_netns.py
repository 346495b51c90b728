"""apply -> in sync -> apply is a no-op -> destroy -> the namespace is exactly as before."""

import json
import threading

import pytest
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root


def _apply(netns, path, **kw):
    res = netns.kvmnet("apply", str(path), **kw)
    assert res.returncode == 0, res.stderr
    return res


def _plan_steps(netns, path):
    res = netns.kvmnet("plan", "--json", str(path))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["steps"]


def test_bridge_mode_moves_uplink_and_back(netns, topo_dir):
    netns.add_uplink("eth0", "10.9.0.2/24", "10.9.0.1")
    before = netns.snapshot()
    _apply(netns, topo_dir / "bridge.toml")
    addrs = netns.run("ip", "-br", "addr", "show", "br0").stdout
    assert "10.9.0.2/24" in addrs
    assert "10.9.0.2" not in netns.run("ip", "-br", "addr", "show", "eth0").stdout
    assert "default via 10.9.0.1 dev br0" in netns.run("ip", "route").stdout
    assert "master br0" in netns.run("ip", "link", "show", "eth0").stdout
    assert "master br0" in netns.run("ip", "link", "show", "kn-bridge-vm1-0").stdout
    # the bridge takes the uplink's MAC, so the LAN sees the same host
    eth_mac = json.loads(netns.run("ip", "-j", "link", "show", "eth0").stdout)[0]["address"]
    assert json.loads(netns.run("ip", "-j", "link", "show", "br0").stdout)[0]["address"] == eth_mac
    assert _plan_steps(netns, topo_dir / "bridge.toml") == []
    again = _apply(netns, topo_dir / "bridge.toml")
    assert "already in sync" in again.stdout
    assert netns.kvmnet("destroy", str(topo_dir / "bridge.toml")).returncode == 0
    netns.settle()  # IPv6 back on the uplink (off while it was a port): its link-local's DAD
    assert netns.snapshot() == before
    second = netns.kvmnet("destroy", str(topo_dir / "bridge.toml"))
    assert second.returncode == 0 and "nothing to destroy" in second.stdout


def test_isolated_network_apply_destroy(netns, topo_dir):
    before = netns.snapshot()
    _apply(netns, topo_dir / "isolated.toml")
    assert "10.77.0.1/24" in netns.run("ip", "-br", "addr", "show", "kvmiso0").stdout
    for tap in ("kn-isolated-a-0", "kn-isolated-b-0"):
        assert "master kvmiso0" in netns.run("ip", "link", "show", tap).stdout
    assert netns.run("sysctl", "-n", "net.ipv6.conf.kvmiso0.disable_ipv6").stdout.strip() == "1"
    assert _plan_steps(netns, topo_dir / "isolated.toml") == []
    assert netns.kvmnet("destroy", str(topo_dir / "isolated.toml")).returncode == 0
    assert netns.snapshot() == before


def test_drift_is_repaired(netns, topo_dir):
    _apply(netns, topo_dir / "isolated.toml")
    netns.sh("ip link set kn-isolated-a-0 nomaster && ip link del kn-isolated-b-0 && ip addr flush dev kvmiso0")
    steps = [s["describe"] for s in _plan_steps(netns, topo_dir / "isolated.toml")]
    assert any("kn-isolated-a-0 master kvmiso0" in s for s in steps)
    assert any("create tap kn-isolated-b-0" in s for s in steps)
    assert any("10.77.0.1/24" in s for s in steps)
    _apply(netns, topo_dir / "isolated.toml")
    assert _plan_steps(netns, topo_dir / "isolated.toml") == []
    assert netns.kvmnet("destroy", str(topo_dir / "isolated.toml")).returncode == 0


@pytest.mark.parametrize("topology", ["bridge.toml", "isolated.toml"])
def test_failure_at_every_step_rolls_back(netns, topo_dir, topology):
    if topology == "bridge.toml":
        netns.add_uplink("eth0", "10.9.0.2/24", "10.9.0.1")
    before = netns.snapshot()
    n = len(_plan_steps(netns, topo_dir / topology))
    assert n >= 4
    for k in range(n):
        res = netns.kvmnet("apply", str(topo_dir / topology), env={"KVMNET_FAULT_AT": str(k)})
        assert res.returncode == 1, res.stdout + res.stderr
        assert "injected fault" in res.stderr and "rolled back" in res.stderr or k == 0
        netns.settle()  # (bridge mode: the uplink's IPv6 may have come back on, link-local in DAD)
        after = netns.snapshot()
        assert after == before, f"not rolled back after a failure at step {k}:\n" + snapshot_diff(before, after)


def test_concurrent_applies_serialize(netns, topo_dir):
    results = []

    def run():
        results.append(netns.kvmnet("apply", str(topo_dir / "isolated.toml")))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert sum("already in sync" in r.stdout for r in results) == 1
    assert _plan_steps(netns, topo_dir / "isolated.toml") == []
    netns.kvmnet("destroy", str(topo_dir / "isolated.toml"))


def test_host_conflicts_are_input_errors_and_change_nothing(netns, topo_dir, tmp_path):
    netns.sh("ip link add kvmiso0 type bridge")  # someone else's bridge, same name
    before = netns.snapshot()
    res = netns.kvmnet("apply", str(topo_dir / "isolated.toml"))
    assert res.returncode == 2
    assert "isolated.toml:4: networks.lab.bridge: kvmiso0 already exists on this host (bridge) and kvmnet did not create it" in res.stderr
    assert netns.snapshot() == before
    # a subnet already routed on the host
    netns.sh("ip link del kvmiso0 && ip link add v0 type veth peer name v1 && ip addr add 10.77.0.5/16 dev v0 && ip link set v0 up")
    res = netns.kvmnet("apply", str(topo_dir / "isolated.toml"))
    assert res.returncode == 2 and "10.77.0.0/24 overlaps the host's route 10.77.0.0/16 dev v0" in res.stderr
    # a missing uplink
    res = netns.kvmnet("apply", str(topo_dir / "bridge.toml"))
    assert res.returncode == 2 and "networks.lan.uplink: uplink eth0 does not exist on this host" in res.stderr


def test_destroy_force_without_record(netns, topo_dir):
    _apply(netns, topo_dir / "isolated.toml")
    (netns.state_dir / "isolated" / "state.json").write_text("{ truncated")
    res = netns.kvmnet("apply", str(topo_dir / "isolated.toml"))
    assert res.returncode == 2 and "record is corrupt: not JSON" in res.stderr and "destroy --force" in res.stderr
    netns.sh("ip link add bystander type bridge")
    res = netns.kvmnet("destroy", "--force", str(topo_dir / "isolated.toml"))
    assert res.returncode == 0, res.stderr
    links = netns.run("ip", "-br", "link").stdout
    assert "kvmiso0" not in links and "kn-isolated-a-0" not in links and "bystander" in links
