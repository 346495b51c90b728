"""A bridge kvmnet creates keeps the network's MTU when ports with a larger MTU join it (issue 12
item 18), and the ports kvmnet attaches get the network's MTU."""

import textwrap

import pytest

pytestmark = pytest.mark.root


def _topology(tmp_path, body: str):
    path = tmp_path / "mtu.toml"
    path.write_text(textwrap.dedent(body))
    return path


def _mtu(netns, link: str) -> int:
    return int(netns.run("cat", f"/sys/class/net/{link}/mtu").stdout)


@pytest.mark.parametrize("mtu", [1420, 1500])
def test_bridge_keeps_its_mtu_when_a_1500_port_joins(netns, tmp_path, mtu):
    path = _topology(tmp_path, f"""
        [networks.lab]
        mode = "isolated"
        bridge = "kvmmtu0"
        subnet = "10.77.0.0/24"
        mtu = {mtu}
        """)
    res = netns.kvmnet("apply", str(path))
    assert res.returncode == 0, res.stderr
    assert _mtu(netns, "kvmmtu0") == mtu
    # the way a user attaches a port: the veth's MTU is 9000, larger than the bridge's
    netns.sh("ip link add uv0 mtu 9000 type veth peer name uv0p && ip link set uv0 master kvmmtu0 up")
    assert _mtu(netns, "kvmmtu0") == mtu
    check = netns.kvmnet("check", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    netns.sh("ip link del uv0")
    assert netns.kvmnet("destroy", str(path)).returncode == 0


def test_bridge_mode_gives_the_uplink_the_network_mtu_and_restores_it(netns, tmp_path):
    netns.add_uplink("eth0", "10.9.0.2/24", "10.9.0.1")
    path = _topology(tmp_path, """
        [networks.lan]
        mode = "bridge"
        bridge = "br0"
        uplink = "eth0"
        mtu = 1400
        [guests.vm1]
        [[guests.vm1.nics]]
        network = "lan"
        """)
    res = netns.kvmnet("apply", str(path))
    assert res.returncode == 0, res.stderr
    ports = netns.run("ls", "/sys/class/net/br0/brif").stdout.split()
    assert len(ports) == 2 and {_mtu(netns, p) for p in ports} == {1400}  # the uplink and the tap
    assert _mtu(netns, "br0") == 1400
    assert netns.kvmnet("check", str(path)).returncode == 0
    assert netns.kvmnet("destroy", str(path)).returncode == 0
    assert _mtu(netns, "eth0") == 1500
