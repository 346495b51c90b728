"""The seed's remaining QEMU networking with real guests: multi-queue taps, tap tuning,
guests without a network, packet capture."""

import shutil
import subprocess
import textwrap

from helpers import pcap

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


def test_multi_queue_and_tuned_taps_get_leases(make_lab, tmp_path):
    """queues = 2: kvmnet creates the tap multi-queue, so QEMU accepts `queues=2` on it; the
    seed's sndbuf/vnet_hdr/vhost/vectors are accepted by QEMU and the NIC works."""
    lab = make_lab(_topology(tmp_path, """\
        [guests.mq]
        queues = 2
        cpus = 2
        [[guests.mq.nics]]
        network = "default"
        mac = "52:54:00:00:aa:01"
        ip = "192.168.122.20"
        [guests.tuned]
        [[guests.tuned.nics]]
        network = "default"
        mac = "52:54:00:00:aa:02"
        ip = "192.168.122.21"
        sndbuf = 1048576
        vnet_hdr = false
        vhost = "off"
        vectors = 3
        """))
    lab.apply()
    flags = int(lab.host.run("cat", "/sys/class/net/" + _tap(lab, "mq") + "/tun_flags").stdout, 16)
    assert flags & 0x0100, f"tap is not multi-queue: tun_flags {flags:#x}"
    tuned_args = lab.qemu_args("tuned")
    assert "sndbuf=1048576,vnet_hdr=off" in tuned_args[1] and tuned_args[3].endswith(",vectors=3")
    mq, tuned = lab.boot("mq", "tuned")
    assert mq.leases()["eth0"]["ip"] == "192.168.122.20/24"
    assert tuned.leases()["eth0"]["ip"] == "192.168.122.21/24"
    tuned.check("ping -c1 -W3 192.168.122.20")
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


def test_a_captured_nic_writes_a_pcap_with_dhcp_and_http(make_lab, tmp_path):
    """capture = PATH: QEMU's filter-dump writes the guest's DHCP exchange and its HTTP request
    to a pcap that tcpdump and a plain pcap reader both read (no virtio-net headers)."""
    out = tmp_path / "cap.pcap"
    lab = make_lab(_topology(tmp_path, f"""\
        [guests.cap]
        [[guests.cap.nics]]
        network = "default"
        mac = "52:54:00:00:aa:03"
        ip = "192.168.122.30"
        capture = "{out}"
        """))
    lab.apply()
    (cap,) = lab.boot("cap")
    assert "wan" in cap.check("timeout 5 wget -qO- http://10.0.0.1/")
    cap.stop()
    assert pcap.dhcp_types(out)[:4] == [1, 2, 3, 5]  # discover, offer, request, ack
    assert pcap.containing(out, b"GET / HTTP/1.1") == 1
    if shutil.which("tcpdump"):
        listing = subprocess.run(["tcpdump", "-n", "-r", str(out)], capture_output=True, text=True, check=True).stdout
        assert "BOOTP/DHCP, Request from 52:54:00:00:aa:03" in listing and "10.0.0.1.80" in listing
