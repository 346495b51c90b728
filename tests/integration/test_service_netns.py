"""kvmnet as a host service, for real in namespaces: enabled topologies come back after a
simulated reboot (a fresh namespace, an empty state dir, the same config dir), and `kvmnet try`
keeps a change only when confirmed: timed out, interrupted and killed tries put the host back
exactly as it was, including the version of the topology applied before."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.natlab import NatLab
from helpers.netns import KVMNET, ROOT, snapshot_diff

pytestmark = pytest.mark.root
NATLAB = Path(__file__).resolve().parents[1] / "data" / "topologies" / "nat-lab.toml"
NAT = ROOT / "topologies" / "nat.toml"


def _power_cut(lab: NatLab) -> None:
    """The machine goes away: namespaces, processes and /run state gone; nothing destroyed."""
    for ns in reversed(lab.spaces):
        ns.delete()


def test_enabled_topologies_come_back_after_a_reboot(tmp_path):
    # /etc/kvmnet and /var/lib/kvmnet survive the power cut; /run (the state dir) does not
    env = {"KVMNET_CONFIG_DIR": str(tmp_path / "etc-kvmnet"), "KVMNET_LIB_DIR": str(tmp_path / "var-lib-kvmnet")}
    first = NatLab(NATLAB)
    try:
        res = first.kvmnet("enable", str(NATLAB), env=env)
        assert res.returncode == 0, res.stderr
        res = first.kvmnet("apply-enabled", env=env)
        assert res.returncode == 0, res.stderr
        assert first.add_client("web", "52:54:00:12:34:56").lease["ip"] == "192.168.122.10"
    finally:
        _power_cut(first)
    second = NatLab(NATLAB)  # a fresh namespace and an empty state dir: nothing of the first
    try:
        assert "virbr0" not in second.host.run("ip", "-br", "link").stdout
        res = second.kvmnet("apply-enabled", env=env)
        assert res.returncode == 0, res.stderr
        enabled = str(tmp_path / "etc-kvmnet" / "natlab.toml")
        assert res.stdout.startswith(f"natlab: applied ") and res.stdout.endswith(f"({enabled})\n"), res.stdout
        # the first boot's leases are back before any client asks again (dnsmasq read its file)
        leases = json.loads(second.kvmnet("leases", "--json", env=env).stdout)["leases"]
        assert [(l["ip"], l["mac"]) for l in leases] == [("192.168.122.10", "52:54:00:12:34:56")], leases
        web = second.add_client("web", "52:54:00:12:34:56")
        assert web.lease["ip"] == "192.168.122.10" and web.lease["router"] == "192.168.122.1"
        other = second.add_client("other", "52:54:00:00:00:77")
        assert other.fetch("http://10.0.0.1/").strip() == "wan saw 10.0.0.2"  # MASQUERADE is back
        listing = second.kvmnet("list", env=env).stdout.splitlines()
        assert listing[1].split() == ["natlab", enabled, enabled, "in", "sync"], listing
        res = second.kvmnet("destroy-enabled", env=env)
        assert res.returncode == 0, res.stderr
        assert "virbr0" not in second.host.run("ip", "-br", "link").stdout
        # a shutdown keeps the leases for the next boot; a plain destroy leaves no trace
        assert (tmp_path / "var-lib-kvmnet" / "natlab" / "dnsmasq-default.leases").exists()
    finally:
        second.close()


# ---------------------------------------------------------------- try


def _start_try(ns, path: Path, timeout: int, **kw) -> subprocess.Popen:
    env = dict(os.environ, KVMNET_STATE_DIR=str(ns.state_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *KVMNET, "try", "--timeout", str(timeout), str(path)],
                            stdin=kw.pop("stdin", subprocess.DEVNULL), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)
    _wait_for(proc.stderr, "Keep it?")
    return proc


def _wait_for(stream, text: str, timeout: float = 30) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([stream], [], [], left)[0], f"no {text!r} in time: {seen}"
        line = stream.readline()
        assert line, f"stream ended before {text!r}: {seen}"
        seen += line
    return seen


@pytest.fixture
def v1(netns, tmp_path):
    """nat.toml applied from a file that the try then edits in place (port 8080 -> 8088)."""
    path = tmp_path / "nat.toml"
    path.write_text(NAT.read_text())
    res = netns.kvmnet("apply", str(path))
    assert res.returncode == 0, res.stderr
    netns.before = _settled(netns)
    path.write_text(NAT.read_text().replace("host_port = 8080", "host_port = 8088"))
    return path


def _settled(netns, timeout: float = 5) -> dict:
    """The snapshot once the kernel has caught up with new links (it flags NO-CARRIER on a tap
    without a guest, and on a bridge without a live port, up to a second later)."""
    snap, deadline = netns.snapshot(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.1)
        again = netns.snapshot()
        if again == snap:
            return snap
        snap = again
    return snap


def _nft(netns) -> str:
    return netns.run("nft", "list", "ruleset").stdout


def test_a_confirmed_try_stays(netns, v1):
    proc = _start_try(netns, v1, 60)
    res = netns.kvmnet("confirm", str(v1))
    assert (res.returncode, res.stdout) == (0, f"nat: confirmed; {v1} stays applied\n"), res.stderr
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.endswith(f"nat: confirmed; {v1} stays applied\n")
    assert "8088" in _nft(netns) and "8080" not in _nft(netns)
    assert netns.kvmnet("check", str(v1)).returncode == 0
    assert not list(netns.state_dir.glob("*.try.json"))


def test_a_try_confirmed_on_its_terminal_stays(netns, v1):
    controller, terminal = os.openpty()
    try:
        proc = _start_try(netns, v1, 60, stdin=terminal)
        os.write(controller, b"y\n")
        out, err = proc.communicate(timeout=10)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err
    assert "8088" in _nft(netns)


def test_a_timed_out_try_restores_the_version_applied_before(netns, v1):
    started = time.monotonic()
    proc = _start_try(netns, v1, 2)  # stdin at end of file: not a confirmation
    assert "8088" in _nft(netns)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and time.monotonic() - started >= 2
    assert err.splitlines()[-1].startswith(f"kvmnet: {v1} was not confirmed (timed out): rolled back: "
                                           f"re-applied the version applied before, from {v1} ("), err
    after = netns.snapshot()
    assert after == netns.before, snapshot_diff(netns.before, after)


def test_an_interrupted_try_of_a_new_topology_leaves_nothing(netns):
    before = netns.snapshot()
    proc = _start_try(netns, NAT, 60)
    assert "virbr0" in netns.run("ip", "-br", "link").stdout
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.splitlines()[-1] == (f"kvmnet: {NAT} was not confirmed (interrupted): rolled back: "
                                    "destroyed topology nat, which was not applied before (6 step(s))"), err
    after = netns.snapshot()
    assert after == before, snapshot_diff(before, after)


def test_a_killed_try_is_rolled_back_by_the_next_command_after_its_deadline(netns, v1):
    proc = _start_try(netns, v1, 3)
    deadline = time.monotonic() + 3
    proc.kill()
    proc.wait()
    res = netns.kvmnet("status")  # before the deadline: the change stays (the try still counts)
    assert res.returncode == 0 and "rolled back" not in res.stderr and "8088" in _nft(netns)
    time.sleep(max(0.0, deadline - time.monotonic()) + 0.2)
    res = netns.kvmnet("status")
    assert res.returncode == 0, res.stderr
    assert f"kvmnet: the try of {v1} was not confirmed by " in res.stderr
    assert "rolled back: re-applied the version applied before" in res.stderr
    after = netns.snapshot()
    assert after == netns.before, snapshot_diff(netns.before, after)
    assert netns.kvmnet("confirm", str(v1)).returncode == 2  # nothing left to confirm
