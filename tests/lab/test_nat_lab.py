"""Scenarios 1, 2 and 7 of the labs: the seed's NAT network (topologies/nat.toml) with real
guests, on both firewall backends."""

import sys
from pathlib import Path

import pytest

from helpers.natlab import HELPERS, PY
from helpers.netns import ROOT, snapshot_diff

sys.path.insert(0, str(ROOT))
from bench.lib.dhcp_capture import ACK, NAMES, Capture, messages  # noqa: E402  (the bench's pcap reader)

pytestmark = pytest.mark.root
NAT = ROOT / "topologies" / "nat.toml"
BIN = Path(sys.executable).parent


def _fetch(ns, url, timeout=5):
    return ns.run(PY, str(HELPERS / "fetch.py"), url, str(timeout), check=False).stdout


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_nat_network_with_real_guests(make_lab, backend):
    lab = make_lab(NAT, backend)
    if backend == "iptables":
        res = lab.kvmnet("plan", "--firewall", "iptables", str(NAT))
        if res.returncode != 0:
            pytest.skip(f"iptables backend unavailable: {res.stderr.strip()}")
    lab.apply()
    # web's IPv4 lease by ISC dhclient (a Debian guest's client) on one backend, busybox udhcpc's on the other
    web, other = lab.boot("web", "other", append={"web": "kvmnet.dhcp4=dhclient"} if backend == "nftables" else None)
    # leases: the static one for web's MAC, one from the range for the other (on the iptables
    # backend too, with no CHECKSUM --checksum-fill rule: virtio-net on a vnet_hdr tap)
    assert web.leases()["eth0"]["ip"] == "192.168.122.10/24"
    assert web.leases()["eth0"]["dns"] == "192.168.122.1" == other.leases()["eth0"]["dns"]
    assert (web.leases()["eth0"]["client"], other.leases()["eth0"]["client"]) == (
        "dhclient" if backend == "nftables" else "udhcpc", "udhcpc")
    ip = other.leases()["eth0"]["ip"].split("/")[0]
    assert ip.startswith("192.168.122.") and 2 <= int(ip.rsplit(".", 1)[1]) <= 254 and ip != "192.168.122.10"
    assert web.leases()["eth0"]["router"] == "192.168.122.1"
    web.check("ping -c1 -W2 192.168.122.1")
    assert "192.168.122.10" in web.check("nslookup web.kvm.lan 192.168.122.1")
    # outbound through MASQUERADE: the wan sees the host's address
    assert web.check("timeout 5 wget -qO- http://10.0.0.1/") == "wan saw 10.0.0.2\n"
    # inbound through the 8080 forward: from the wan, the host (WAN address, 127.0.0.1), a guest
    assert "kvmnet guest web" in _fetch(lab.wan, "http://10.0.0.2:8080/")
    assert "kvmnet guest web" in _fetch(lab.host, "http://10.0.0.2:8080/")
    assert "kvmnet guest web" in _fetch(lab.host, "http://127.0.0.1:8080/")
    assert "kvmnet guest web" in other.check("timeout 5 wget -qO- http://10.0.0.2:8080/")  # hairpin


def _dhcp_messages(pcap: Path, mac: str) -> list[str]:
    """The DHCP message types to and from `mac` in a capture, in order, each ACK that carries
    option 80 (Rapid Commit) as "ACK+rapid"."""
    return [NAMES[m.kind] + ("+rapid" if m.kind == ACK and m.rapid else "") for m in messages(pcap) if m.mac == mac]


def test_two_guests_reach_each_other_and_one_stopping_leaves_the_other(make_lab, tmp_path):
    lab = make_lab(NAT)
    lab.apply()
    pcap = tmp_path / "dhcp.pcap"
    capture = Capture("virbr0", pcap, netns=lab.host.name)
    try:
        # other's lease by dhcpcd, which asks for rapid commit (RFC 4039): kvmnet's dnsmasq, the
        # network's only DHCP server, acknowledges its DISCOVER at once (web: busybox udhcpc's 4 messages)
        web, other = lab.boot("web", "other", append={"other": "kvmnet.dhcp4=dhcpcd"})
    finally:
        capture.stop()
    assert other.leases()["eth0"]["client"] == "dhcpcd" and web.leases()["eth0"]["client"] == "udhcpc"
    assert other.leases()["eth0"]["dns"] == "192.168.122.1" == web.leases()["eth0"]["dns"]
    rapid, plain = (_dhcp_messages(pcap, g.leases()["eth0"]["mac"]) for g in (other, web))
    assert rapid[-1] == "ACK+rapid" and set(rapid) == {"DISCOVER", "ACK+rapid"}, rapid
    assert plain[-1] == "ACK" and "REQUEST" in plain and plain.index("OFFER") < plain.index("REQUEST"), plain
    other_ip = other.leases()["eth0"]["ip"].split("/")[0]
    web.check(f"ping -c1 -W2 {other_ip}")
    other.check("ping -c1 -W2 192.168.122.10")
    other.stop()
    assert lab.kvmnet("check", str(NAT)).returncode == 0  # bridge, rules, dnsmasq all still there
    assert web.check("timeout 5 wget -qO- http://10.0.0.1/") == "wan saw 10.0.0.2\n"
    assert "kvmnet guest web" in _fetch(lab.wan, "http://10.0.0.2:8080/")


def test_seed_command_line_with_kvmnet_hooks(make_lab, monkeypatch):
    """qemu-system-x86_64 ... -net nic -net tap,script=kvmnet-ifup,downscript=kvmnet-ifdown"""
    lab = make_lab(NAT)
    before = lab.host.snapshot()
    monkeypatch.setenv("KVMNET_STATE_DIR", str(lab.host.state_dir))
    monkeypatch.setenv("KVMNET_TOPOLOGY", str(NAT))  # the first guest's hook applies the network
    seed = ["-net", "nic,model=virtio,macaddr=52:54:00:12:34:56",
            "-net", f"tap,script={BIN / 'kvmnet-ifup'},downscript={BIN / 'kvmnet-ifdown'}"]
    (web,) = lab.boot("web", net_args={"web": seed})
    assert web.leases()["eth0"]["ip"] == "192.168.122.10/24"
    assert web.check("timeout 5 wget -qO- http://10.0.0.1/") == "wan saw 10.0.0.2\n"
    web.stop()
    # QEMU's tap is gone with it; the network stays for other guests
    assert "tap0" not in lab.host.run("ip", "-br", "link").stdout
    assert lab.kvmnet("check", str(NAT)).returncode == 0
    assert lab.kvmnet("destroy", str(NAT)).returncode == 0
    after = lab.host.snapshot()
    assert after == before, snapshot_diff(before, after)
