"""The seed's remaining QEMU networking with real guests: multi-queue taps, tap tuning,
guests without a network, packet capture."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

from labkit.guest import Guest

from kvmnet import naming

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
    types = pcap.dhcp_types(out)  # discover, offer, request, ack, in that order (a busy host may
    rest = iter(types)            # see the guest repeat its discover before the offer comes)
    assert all(t in rest for t in (1, 2, 3, 5)), types
    assert pcap.containing(out, b"GET / HTTP/1.1") == 1
    if shutil.which("tcpdump"):
        listing = subprocess.run(["tcpdump", "-n", "-r", str(out)], capture_output=True, text=True, check=True).stdout
        assert "BOOTP/DHCP, Request from 52:54:00:00:aa:03" in listing and "10.0.0.1.80" in listing


HELPER = "/usr/lib/qemu/qemu-bridge-helper"
NOBODY = (65534, 65534)


def _helper_sandbox(base: Path, conf: Path) -> tuple[list[str], list[str], Path]:
    """What a host admin sets up, made private to the guest's processes: /etc/qemu (the helper
    always reads /etc/qemu/bridge.conf) is kvmnet's conf dir in a private mount namespace over an
    overlay of /etc; /dev/net/tun is a 0666 node there (0600 on this machine); the helper is a
    setuid copy (Debian ships it without the bit). Returns (outer, inner, helper)."""
    helper = base / "qemu-bridge-helper"
    shutil.copy2(HELPER, helper)
    os.chmod(helper, 0o4755)
    tun = base / "tun"
    os.mknod(tun, 0o666 | stat.S_IFCHR, os.makedev(10, 200))
    os.chmod(tun, 0o666)
    for d in ("up", "work"):
        (base / d).mkdir()
    mounts = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={base}/up,workdir={base}/work /etc && "
              f"mkdir -p /etc/qemu && mount --bind {conf} /etc/qemu && mount --bind {tun} /dev/net/tun")
    outer = ["unshare", "-m", "--propagation", "private", "sh", "-c", mounts + ' && exec "$@"', "sh"]
    inner = ["setpriv", f"--reuid={NOBODY[0]}", f"--regid={NOBODY[1]}", "--clear-groups"]
    return outer, inner, helper


@pytest.mark.skipif(not os.path.exists(HELPER), reason="qemu-bridge-helper not installed (qemu-system-common)")
def test_an_unprivileged_guest_through_qemu_bridge_helper(make_lab, tmp_path):
    base = Path(tempfile.mkdtemp(prefix="kvmnet-helper-", dir="/tmp"))  # nobody must reach the ACL
    os.chmod(base, 0o755)
    conf = base / "qemu"
    try:
        outer, inner, helper = _helper_sandbox(base, conf)
        path = _topology(tmp_path, """\
            [networks.closed]
            mode = "isolated"
            bridge = "kvmno0"
            subnet = "10.66.0.0/24"
            [guests.u]
            [[guests.u.nics]]
            network = "default"
            mac = "52:54:00:00:aa:04"
            ip = "192.168.122.40"
            """)
        path.write_text(path.read_text().replace("[networks.default.dhcp]", "allow_unprivileged = true\n[networks.default.dhcp]"))
        lab = make_lab(path)
        res = lab.kvmnet("--qemu-conf-dir", str(conf), "apply", str(path))
        assert res.returncode == 0, res.stderr
        assert (conf / "kvmnet.conf").read_text() == "# kvmnet topology seedq\nallow virbr0\n"
        assert f"include {conf}/kvmnet.conf" in (conf / "bridge.conf").read_text()
        res = lab.kvmnet("qemu-args", "--json", "--helper", str(path), "u",
                         env={"KVMNET_QEMU_BRIDGE_HELPER": str(helper)})
        args = json.loads(res.stdout)["nics"][0]["args"]
        assert args[1] == f"bridge,id=net0,br=virbr0,helper={helper}"
        guest = Guest("u", args, netns=lab.host.name, outer=outer, inner=inner, owner=NOBODY)
        lab.guests["u"] = guest.start()
        guest.wait_ready()
        assert guest.leases()["eth0"]["ip"] == "192.168.122.40/24"
        assert "wan" in guest.check("timeout 5 wget -qO- http://10.0.0.1/")
        assert int(lab.host.run("stat", "-c", "%u", f"/proc/{guest.proc.pid}").stdout) == NOBODY[0]
        # a bridge the ACL does not allow: the helper refuses it, QEMU exits
        denied = subprocess.run(outer + ["ip", "netns", "exec", lab.host.name] + inner + [
            "qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
            "-netdev", f"bridge,id=n0,br=kvmno0,helper={helper}"], capture_output=True, text=True, timeout=60)
        assert denied.returncode != 0 and "access denied by acl file" in denied.stderr, denied.stderr
        guest.stop()
        assert lab.kvmnet("destroy", str(path)).returncode == 0  # the record knows the conf dir
        assert sorted(p.name for p in conf.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not shutil.which("vde_switch"), reason="vde_switch not installed (apt-get install vde2)")
def test_vde_switches_with_real_guests(make_lab, tmp_path):
    """Two guests on a kvmnet-run vde_switch reach each other; a guest on a switch joined to the
    NAT bridge gets its lease from kvmnet's dnsmasq and reaches the wan; destroy stops both."""
    path = _topology(tmp_path, """\
        [networks.sw]
        mode = "vde"
        bridge = "virbr0"
        [networks.solo]
        mode = "vde"
        [guests.x]
        [[guests.x.nics]]
        network = "solo"
        [guests.y]
        [[guests.y.nics]]
        network = "solo"
        [guests.z]
        [[guests.z.nics]]
        network = "sw"
        mac = "52:54:00:00:aa:05"
        """)
    lab = make_lab(path)
    lab.apply()
    assert lab.qemu_args("x")[1] == f"vde,id=net0,sock={lab.host.state_dir}/seedq/vde-solo.ctl"
    x, y, z = lab.boot("x", "y", "z", append={"x": "kvmnet.static=eth0:10.70.0.1/24",
                                              "y": "kvmnet.static=eth0:10.70.0.2/24"})
    x.check("ping -c1 -W3 10.70.0.2")
    y.check("ping -c1 -W3 10.70.0.1")
    lease = z.leases()["eth0"]
    assert lease["ip"].startswith("192.168.122.1") and lease["router"] == "192.168.122.1", lease  # the range .100-.200
    assert "wan" in z.check("timeout 5 wget -qO- http://10.0.0.1/")
    for guest in (x, y, z):
        guest.stop()
    # SIGKILLed switches leave stale pid files (which block vde_switch -d) and take their tap
    # along: apply starts them again and re-joins the tap
    state = lab.host.state_dir / "seedq"
    lab.host.sh(f"kill -9 $(cat {state}/vde-solo.pid) $(cat {state}/vde-sw.pid)")
    time.sleep(0.3)
    assert (state / "vde-solo.pid").exists()
    res = lab.kvmnet("apply", str(path))
    assert res.returncode == 0 and res.stdout.count("start vde_switch") == 2, res.stdout + res.stderr
    tap = lab.host.run("ip", "-br", "link", "show", "master", "virbr0").stdout
    assert naming.vde_tap("seedq", "sw") in tap, tap
    assert lab.kvmnet("destroy", str(path)).returncode == 0
    ours = lab.host.run("pgrep", "-f", f"{lab.host.state_dir}/seedq/vde-", check=False)
    assert ours.returncode == 1, ours.stdout  # no switch of this lab left (exiting zombies have no cmdline)
    assert not list((lab.host.state_dir).glob("seedq/vde-*"))
