"""`kvmnet watch` in a namespace: each kind of drift repaired within a second, destroy respected,
foreign objects ignored, SIGTERM leaves everything applied, a repair that keeps failing backs off."""

from __future__ import annotations

import re
import time

import pytest
from helpers.watching import Watch

pytestmark = pytest.mark.root

DRIFTS = {
    "bridge deleted": "ip link del virbr0",
    "table deleted": "nft delete table inet kvmnet_nat",
    "dnsmasq killed": "kill $(cat {state}/nat/dnsmasq-default.pid)",
    "address removed": "ip addr del 192.168.122.1/24 dev virbr0",
}


@pytest.fixture
def applied(netns, topo_dir):
    netns.add_uplink()
    nat = str(topo_dir / "nat.toml")
    res = netns.kvmnet("apply", nat)
    assert res.returncode == 0, res.stderr
    yield nat
    netns.kvmnet("destroy", nat)


@pytest.fixture
def watch(netns, applied, tmp_path):
    w = Watch(netns, tmp_path / "watch.log")
    yield w
    w.close()


def in_sync(netns, nat: str) -> bool:
    return netns.kvmnet("check", "--quiet", nat).returncode == 0


def wait_in_sync(netns, nat: str, timeout: float = 3) -> float:
    t0 = time.monotonic()
    while not in_sync(netns, nat):
        assert time.monotonic() - t0 < timeout, netns.kvmnet("check", nat).stdout
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_watch_repairs_each_kind_of_drift(netns, applied, watch, drift):
    pid_before = (netns.state_dir / "nat" / "dnsmasq-default.pid").read_text().strip()
    netns.sh(DRIFTS[drift].format(state=netns.state_dir))
    log = watch.wait_for(r"nat: repaired in \d+ ms", timeout=3)
    wait_in_sync(netns, applied, timeout=2)
    line = re.search(r"nat: repaired in .*", log)[0]
    assert "drifted: " in line
    if drift == "dnsmasq killed":
        assert "start dnsmasq for default" in line
        assert (netns.state_dir / "nat" / "dnsmasq-default.pid").read_text().strip() != pid_before
    if drift == "table deleted":
        assert "load firewall rules" in line
    # and again: the new dnsmasq / bridge / table is watched as well
    netns.sh(DRIFTS[drift].format(state=netns.state_dir))
    watch.wait_for(r"nat: repaired in \d+ ms", timeout=3, count=2)
    wait_in_sync(netns, applied, timeout=2)


def test_watch_ignores_what_kvmnet_does_not_own(netns, applied, watch):
    netns.sh("ip link add br-other type bridge && ip link set br-other up && ip addr add 10.77.0.1/24 dev br-other && "
             "nft add table inet someone && nft add chain inet someone c && ip link del br-other && "
             "nft delete table inet someone")
    time.sleep(1)
    assert "repaired" not in watch.log() and "failed" not in watch.log()
    assert in_sync(netns, applied)


def test_destroy_under_watch_is_respected(netns, applied, watch):
    res = netns.kvmnet("destroy", applied)
    assert res.returncode == 0, res.stderr
    watch.wait_for("nat: no longer applied", timeout=3)
    time.sleep(1)  # watch had a second to fight the destroy: nothing came back
    assert "virbr0" not in netns.run("ip", "link").stdout
    assert "kvmnet_nat" not in netns.run("nft", "list", "tables").stdout
    assert "repaired" not in watch.log()


def test_sigterm_exits_within_a_second_leaving_everything_applied(netns, applied, watch):
    rc, took = watch.stop()
    assert rc == 0, watch.log()
    assert took < 1.0
    assert "stopped; everything stays applied" in watch.log()
    assert in_sync(netns, applied)
    assert not [p for p in netns.processes() if p.endswith((" nft", " dbus-monitor"))]  # no monitor left behind


def test_sigint_exits_cleanly_too(netns, applied, watch):
    import signal
    rc, took = watch.stop(signal.SIGINT)
    assert (rc, took < 1.0) == (0, True), watch.log()
    assert in_sync(netns, applied)


def test_a_repair_that_keeps_failing_backs_off_then_recovers(netns, applied, watch):
    # someone's table took the name of kvmnet's (in one nft transaction): kvmnet will not take
    # over rules it did not write, at every try
    netns.run("nft", "-f", "-", input="delete table inet kvmnet_nat\n"
              "table inet kvmnet_nat {\n chain c {\n  tcp dport 22 accept\n }\n}\n")
    log = watch.wait_for(r"repair failed \(3 in a row\)", timeout=6)
    fails = re.findall(r"repair failed \((\d+) in a row\).*next try in ([\d.]+) s", log)
    assert [float(d) for _, d in fails[:3]] == [0.5, 1.0, 2.0], log
    assert "holds rules kvmnet did not write" in log
    time.sleep(1)
    assert len(re.findall("repair failed", watch.log())) == 3  # backing off, not spinning on the events
    netns.sh("nft delete table inet kvmnet_nat")
    watch.wait_for("nat: in sync again", timeout=4)
    wait_in_sync(netns, applied, timeout=1)


def test_watch_once_repairs_and_exits(netns, applied):
    netns.sh("nft delete table inet kvmnet_nat")
    res = netns.kvmnet("watch", "--once")
    assert res.returncode == 0, res.stderr
    assert re.search(r"nat: repaired in \d+ ms \(drifted: firewall:nftables:kvmnet_nat\)", res.stderr)
    assert in_sync(netns, applied)


def test_watch_with_files_keeps_only_those(netns, applied, topo_dir, tmp_path):
    routed = str(topo_dir / "routed.toml")
    assert netns.kvmnet("apply", routed).returncode == 0
    try:
        netns.sh("nft delete table inet kvmnet_nat")
        netns.sh("nft delete table inet kvmnet_routed")
        res = netns.kvmnet("watch", "--once", routed)
        assert res.returncode == 0, res.stderr
        assert "routed: repaired" in res.stderr and "nat:" not in res.stderr
        assert in_sync(netns, routed) and not in_sync(netns, applied)
    finally:
        netns.kvmnet("destroy", routed)
