"""A real guest on a passt network: its address from passt's DHCP, a page from a wan host, a
port forwarded to it from the host; its passt started and stopped by `kvmnet passt`."""

import subprocess
import textwrap
import time

import pytest

from helpers.natlab import HELPERS, PY

pytestmark = pytest.mark.root

WAN_SERVER = "198.51.100.1"  # not the host's gateway (10.0.0.1): passt maps that one to the host


def _fetch(ns, url, timeout=5):
    return ns.run(PY, str(HELPERS / "fetch.py"), url, str(timeout), check=False).stdout


CUSTOM = 'address = "10.0.2.15/24"\ngateway = "10.0.2.2"\ndns = ["10.0.2.3"]\n'


def _topology(tmp_path, extra=""):
    path = tmp_path / "passt.toml"
    path.write_text(textwrap.dedent("""\
        [networks.pn]
        mode = "passt"
        mtu = 1500
        """) + extra + textwrap.dedent("""\
        [[networks.pn.forwards]]
        proto = "tcp"
        host_port = 5080
        host_addr = "127.0.0.1"
        guest = "dev"
        guest_port = 80
        [guests.dev]
        [[guests.dev.nics]]
        network = "pn"
        """))
    return path


def _passts(lab) -> list[str]:
    return [line for line in lab.host.run("ps", "-eo", "pid,user,args").stdout.splitlines()
            if "passt" in line and str(lab.host.state_dir) in line]


@pytest.mark.parametrize("custom", [False, True], ids=["passt-defaults", "address-gateway-dns"])
def test_passt_guest(make_lab, tmp_path, custom):
    lab = make_lab(_topology(tmp_path, CUSTOM if custom else ""))
    lab.wan.sh(f"ip addr add {WAN_SERVER}/32 dev lo")
    lab.host.sh(f"ip route add {WAN_SERVER}/32 via {lab.WAN_PEER}")
    topo = str(lab.topology)
    started = lab.kvmnet("passt", "start", topo, "dev")
    assert started.returncode == 0, started.stderr
    sock = next(lab.host.state_dir.glob("*/passt-kn-passt-dev-0/sock"))
    assert f"serving {sock}" in started.stdout
    (line,) = _passts(lab)
    assert line.split()[1] == "nobody", line
    (dev,) = lab.boot("dev")
    lease = dev.leases()["eth0"]
    if custom:
        assert (lease["ip"], lease["router"], lease["dns"]) == ("10.0.2.15/24", "10.0.2.2", "10.0.2.3"), lease
    else:
        assert lease["ip"] == f"{lab.WAN_HOST}/24" and lease["router"] == lab.WAN_PEER, lease  # the host's, copied
    rc, out = dev.run(f"timeout 5 wget -qO- http://{WAN_SERVER}/", timeout=10)
    assert rc == 0 and out.startswith(f"wan saw {lab.WAN_HOST}"), out  # passt's own socket on the host
    assert "kvmnet guest dev" in _fetch(lab.host, "http://127.0.0.1:5080/")
    dev.stop(poweroff=False)
    stopped = lab.kvmnet("passt", "stop", topo, "dev")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped passt "), stopped.stdout + stopped.stderr
    assert _passts(lab) == [] and not sock.parent.exists()
    assert "no passt was running" in lab.kvmnet("passt", "stop", topo, "dev").stdout


def test_passt_guest_over_ipv6(make_lab, tmp_path):
    """passt copies the host's IPv6 prefix and routes (SLAAC from its RAs) and relays the
    guest's IPv6 through its own sockets on the host."""
    lab = make_lab(_topology(tmp_path))
    lab.host.sh("ip -6 addr add fd00:77::2/64 dev wan0 nodad && ip -6 route add default via fd00:77::1")
    lab.wan.sh("ip -6 addr add fd00:77::1/64 dev eth0 nodad && ip -6 addr add fd00:99::1/128 dev lo")
    lab.host.sh("ip -6 route add fd00:99::1/128 via fd00:77::1")
    subprocess.Popen(["ip", "netns", "exec", lab.wan.name, PY, str(HELPERS / "httpd.py"), "8086", "wan6", "::"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert lab.kvmnet("passt", "start", str(lab.topology), "dev").returncode == 0
    (dev,) = lab.boot("dev")
    deadline = time.monotonic() + 20
    while "fd00:77:" not in dev.check("ip -6 addr show dev eth0 scope global"):
        assert time.monotonic() < deadline, dev.check("ip -6 addr; ip -6 route")
        time.sleep(1)
    rc, out = dev.run("timeout 5 wget -qO- http://[fd00:99::1]:8086/", timeout=10)
    assert rc == 0 and out.startswith("wan6 saw fd00:77::2"), out
    assert lab.kvmnet("passt", "stop", str(lab.topology), "dev").returncode == 0
