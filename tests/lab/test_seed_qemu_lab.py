"""The seed's remaining QEMU networking with real guests: multi-queue taps, tap tuning,
guests without a network, packet capture."""

import textwrap

import pytest

pytestmark = pytest.mark.root

NAT = """\
[networks.default]
mode = "nat"
bridge = "virbr0"
subnet = "192.168.122.0/24"
[networks.default.dhcp]
start = "192.168.122.100"
end = "192.168.122.200"
"""


def _topology(tmp_path, guests: str):
    path = tmp_path / "seedq.toml"
    path.write_text(NAT + textwrap.dedent(guests))
    return path


def test_multi_queue_guest_gets_a_lease(make_lab, tmp_path):
    """queues = 2: kvmnet creates the tap multi-queue, so QEMU accepts `queues=2` on it."""
    lab = make_lab(_topology(tmp_path, """\
        [guests.mq]
        queues = 2
        cpus = 2
        [[guests.mq.nics]]
        network = "default"
        mac = "52:54:00:00:aa:01"
        ip = "192.168.122.20"
        """))
    lab.apply()
    flags = int(lab.host.run("cat", "/sys/class/net/" + _tap(lab, "mq") + "/tun_flags").stdout, 16)
    assert flags & 0x0100, f"tap is not multi-queue: tun_flags {flags:#x}"
    (mq,) = lab.boot("mq")
    assert mq.leases()["eth0"]["ip"] == "192.168.122.20/24"
    features = mq.check("cat /sys/class/net/eth0/device/features").strip()
    assert features[22] == "1", features  # VIRTIO_NET_F_MQ: the device offers the guest 2 queue pairs


def _tap(lab, guest: str) -> str:
    args = lab.qemu_args(guest)
    netdev = next(a for a in args if a.startswith("tap,"))
    return dict(kv.split("=", 1) for kv in netdev.split(",")[1:])["ifname"]


def test_a_guest_without_nics_boots_with_no_network_device(make_lab, tmp_path):
    """QEMU's defaults stay on (no -nodefaults): only kvmnet's `-nic none` keeps its user-mode NIC out."""
    lab = make_lab(_topology(tmp_path, """\
        [guests.quiet]
        memory = 128
        """))
    assert lab.qemu_args("quiet") == ["-nic", "none"]
    (quiet,) = lab.boot("quiet", nodefaults=False)
    assert quiet.check("ls /sys/class/net").split() == ["lo"]
