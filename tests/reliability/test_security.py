"""Security posture, each promise tested: dnsmasq's exposure and privileges, file modes,
spoofing guests, warnings for unsafe topology files."""

import grp
import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.natlab import running_lab
from kvmnet.host import dnsmasq

pytestmark = pytest.mark.root
DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"


@pytest.fixture(scope="module")
def lab():
    with running_lab(DATA / "antispoof.toml") as lab:
        yield lab


def _dnsmasq_pid(lab):
    return int([p for p in lab.host.processes() if p.endswith("dnsmasq")][0].split()[0])


def test_dnsmasq_listens_only_on_the_bridge(lab, report):
    pid = _dnsmasq_pid(lab)
    sockets = lab.host.run("ss", "-Hlnup", "-Hlntp").stdout if False else \
        lab.host.run("ss", "-Hlnutp").stdout
    mine = [l for l in sockets.splitlines() if f"pid={pid}," in l]
    addrs = sorted(re.split(r"\s+", l)[4] for l in mine)
    ok = addrs and all(a.startswith(("192.168.122.1:53", "0.0.0.0%virbr0:67", "*%virbr0:67")) for a in addrs)
    report.add("dnsmasq bound only to the gateway (53) and the bridge (67)", 1, int(bool(ok)), " ".join(addrs))
    assert ok, addrs
    # nothing answers DNS on the WAN address
    out = lab.wan.run("busybox", "nslookup", "-timeout=1", "web", "10.0.0.2", check=False)
    assert "192.168.122" not in out.stdout


def test_dnsmasq_runs_unprivileged_and_reads_only_our_config(lab, report):
    pid = _dnsmasq_pid(lab)
    uid = int(re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    ok = uid != 0 and len(argv) == 2 and argv[1].startswith(b"--conf-file=" + str(lab.host.state_dir).encode())
    report.add("dnsmasq unprivileged, reads only kvmnet's config", 1, int(ok), f"uid {uid}, argv {[a.decode() for a in argv]}")
    assert ok


def test_state_dir_and_files_are_private(lab, report):
    bad = []
    # dnsmasq reads its hosts files (dnsmasq-NET.d/) after dropping privileges: the directories on
    # that path let its group through (0710, no listing), those files are 0640 root:<its group>
    group = grp.getgrgid(pwd.getpwnam(dnsmasq.unprivileged_user()).pw_gid).gr_gid
    for path in [lab.host.state_dir, *lab.host.state_dir.rglob("*")]:
        st = path.stat()
        mode = stat.S_IMODE(st.st_mode)
        traversable = mode == 0o710 and st.st_gid == group
        if (path.is_dir() and mode != 0o700 and not traversable
                or path.suffix in (".json", ".conf", ".leases") and mode != 0o600
                or path.parent.suffix == ".d" and (mode, st.st_gid) != (0o640, group)):
            bad.append(f"{path}: {oct(mode)}")
    report.add("state dir private (dnsmasq's group may only traverse to its hosts files), records and configs 0600",
               1, int(not bad), "; ".join(bad))
    assert not bad


def test_guests_cannot_spoof_each_other(lab, report):
    checks = []
    # honest traffic works
    checks.append(("honest guest reaches the wan", lab.web.fetch("http://10.0.0.1/", 2) == "wan saw 10.0.0.2\n"))
    # other takes web's address: its packets are dropped at the bridge
    lab.other.ns.sh("ip addr flush dev eth0 && ip addr add 192.168.122.10/24 dev eth0 && ip route replace default via 192.168.122.1")
    checks.append(("IP spoofing blocked", "ERROR" in lab.other.fetch("http://10.0.0.1/", 1)))
    # other takes web's MAC (and a free address): dropped too
    lab.other.ns.sh("ip addr flush dev eth0 && ip link set eth0 address 52:54:00:12:34:56 && "
                    "ip addr add 192.168.122.11/24 dev eth0 && ip route replace default via 192.168.122.1")
    checks.append(("MAC spoofing blocked", "ERROR" in lab.other.fetch("http://10.0.0.1/", 1)))
    # back to its own identity: works again
    lab.other.ns.sh("ip addr flush dev eth0 && ip link set eth0 address 52:54:00:00:00:77 && "
                    "ip addr add 192.168.122.11/24 dev eth0 && ip route replace default via 192.168.122.1")
    checks.append(("own identity works again", lab.other.fetch("http://10.0.0.1/", 2) == "wan saw 10.0.0.2\n"))
    # a guest without a static address may use any address of the subnet, and no other
    roamer = lab.add_client("roamer", "52:54:00:00:00:88", serve=False)
    checks.append(("dynamic guest works", roamer.fetch("http://10.0.0.1/", 2) == "wan saw 10.0.0.2\n"))
    # ... but not web's static address (its ARP would draw web's traffic), nor the gateway's
    lab.web.ns.sh("ip link set eth0 down")  # (web gone quiet, as a stopped guest: its address looks free)
    roamer.ns.sh("ip addr flush dev eth0 && ip addr add 192.168.122.10/24 dev eth0 && ip route replace default via 192.168.122.1")
    checks.append(("dynamic guest cannot take a static guest's address", "ERROR" in roamer.fetch("http://10.0.0.1/", 1)))
    lab.web.ns.sh("ip link set eth0 up && ip route replace default via 192.168.122.1")
    roamer.ns.sh("ip addr flush dev eth0 && ip addr add 10.0.0.77/8 dev eth0")
    checks.append(("dynamic guest cannot use an address outside the subnet", "ERROR" in roamer.fetch("http://10.0.0.1/", 1)))
    report.add("spoof_protection: IP/MAC spoofing dropped, honest traffic passes", len(checks), sum(ok for _, ok in checks))
    assert all(ok for _, ok in checks), checks


def test_world_writable_topology_warns(tmp_path, report):
    path = tmp_path / "open.toml"
    path.write_text((DATA / "antispoof.toml").read_text())
    os.chmod(path, 0o666)
    res = subprocess.run([sys.executable, "-m", "kvmnet.cli", "validate", str(path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    ok = res.returncode == 0 and "world-writable" in res.stderr
    report.add("world-writable topology file gets a warning", 1, int(ok))
    assert ok, res.stderr
