"""`kvmnet capture FILE NETWORK`: a network's traffic, DHCP and HTTP included, in a pcap."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import pcap
from helpers.natlab import NatLab
from helpers.netns import KVMNET, ROOT

pytestmark = pytest.mark.root
NAT = ROOT / "topologies" / "nat.toml"


@pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump not installed (scripts/test installs it)")
def test_capture_a_network_with_dhcp_and_http(tmp_path):
    out = tmp_path / "nat.pcap"
    lab = NatLab(NAT)
    try:
        lab.apply()
        env = dict(os.environ, KVMNET_STATE_DIR=str(lab.host.state_dir), PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(["ip", "netns", "exec", lab.host.name, *KVMNET, "capture", str(NAT), "default",
                                 "-o", str(out), "--duration", "8"], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not (out.exists() and out.stat().st_size >= 24):  # tcpdump has written its header
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        web = lab.add_client("web", "52:54:00:12:34:56", serve=False)
        assert web.lease["ip"] == "192.168.122.10"
        assert "wan" in web.fetch("http://10.0.0.1/")
        assert proc.wait(20) == 0
        assert "capturing virbr0 to" in proc.stderr.read()
    finally:
        lab.close()
    assert pcap.dhcp_types(out)[:4] == [1, 2, 3, 5]
    assert pcap.containing(out, b"GET / HTTP/1.1") == 1


def test_capture_without_tcpdump_or_on_a_network_without_bridge(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), PYTHONPATH=str(ROOT))  # no tcpdump on this PATH
    res = subprocess.run([*KVMNET, "capture", str(NAT), "default"], env=env, capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith("kvmnet capture needs tcpdump, which is not installed (apt-get install tcpdump)")
    res = subprocess.run([*KVMNET, "capture", str(ROOT / "topologies" / "user.toml"), "slirp"],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "has no bridge to capture on" in res.stderr, res.stderr
