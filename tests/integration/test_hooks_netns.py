"""QEMU's hooks and `kvmnet run`, in namespaces: attach/detach, idempotence, 50 guests at once,
the seed's `-net nic -net tap,script=...` command line with a real QEMU (50 guests at once: tests/reliability)."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.netns import ROOT

pytestmark = pytest.mark.root
TOPOLOGY = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"
VENV_BIN = Path(os.sys.executable).parent
IFUP, IFDOWN = str(VENV_BIN / "kvmnet-ifup"), str(VENV_BIN / "kvmnet-ifdown")


def _env(netns, **extra):
    return dict(os.environ, KVMNET_STATE_DIR=str(netns.state_dir), **extra)


def _hook(netns, hook, tap, **env):
    return netns.run(hook, tap, env=_env(netns, **env), check=False)


def _master(netns, link):
    out = netns.run("ip", "-o", "link", "show", link, check=False).stdout
    return out.split(" master ")[1].split()[0] if " master " in out else None


def _state(netns):
    return (netns.run("nft", "list", "ruleset").stdout,
            sorted(p for p in netns.processes() if "dnsmasq" in p))


def test_ifup_ifdown_idempotent(netns):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    netns.sh("ip tuntap add dev tap7 mode tap")
    for _ in range(2):
        res = _hook(netns, IFUP, "tap7")
        assert res.returncode == 0, res.stderr
        assert _master(netns, "tap7") == "virbr0"
    assert "UP" in netns.run("ip", "-o", "link", "show", "tap7").stdout
    for _ in range(2):
        assert _hook(netns, IFDOWN, "tap7").returncode == 0
        assert _master(netns, "tap7") is None
    assert _hook(netns, IFDOWN, "no-such-tap").returncode == 0
    # ifdown of a tap the topology owns leaves it attached: it is the topology's, not QEMU's
    assert _hook(netns, IFDOWN, "kn-natlab-web-0").returncode == 0 and _master(netns, "kn-natlab-web-0") == "virbr0"
    assert netns.kvmnet("plan", "--json", str(TOPOLOGY)).stdout.count('"key"') == 0
    netns.kvmnet("destroy", str(TOPOLOGY))


def test_hook_rejects_bad_names_without_a_shell(netns):
    for bad in ("tap0;reboot", "../../x", "a" * 16, ""):
        res = _hook(netns, IFUP, bad)
        assert res.returncode == 2, (bad, res.stderr)


def _qemu(netns, *args):
    return subprocess.Popen(["ip", "netns", "exec", netns.name, "qemu-system-x86_64", "-accel", "tcg", "-m", "64",
                             "-nodefaults", "-display", "none", "-S", *args],
                            env=_env(netns), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_seed_command_line_with_kvmnet_hooks(netns):
    """qemu ... -net nic -net tap,script=kvmnet-ifup,downscript=kvmnet-ifdown, as in the seed."""
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    ruleset = _state(netns)
    qemu = _qemu(netns, "-net", "nic,model=virtio", "-net", f"tap,ifname=seedtap0,script={IFUP},downscript={IFDOWN}")
    try:
        assert _wait(lambda: _master(netns, "seedtap0") == "virbr0"), qemu.stderr.read() if qemu.poll() else ""
    finally:
        qemu.send_signal(signal.SIGTERM)
        qemu.wait(10)
    assert _wait(lambda: "seedtap0" not in netns.run("ip", "-br", "link").stdout)
    assert _state(netns) == ruleset and "virbr0" in netns.run("ip", "-br", "link").stdout
    netns.kvmnet("destroy", str(TOPOLOGY))


def test_run_applies_and_launches_qemu_on_the_tap(netns):
    proc = subprocess.Popen(["ip", "netns", "exec", netns.name, os.sys.executable, "-m", "kvmnet.cli", "run",
                             str(TOPOLOGY), "web", "--", "-display", "none", "-S", "-nodefaults"],
                            env=_env(netns, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # QEMU holds the tap open: carrier comes up on the topology's tap
        assert _wait(lambda: "NO-CARRIER" not in netns.run("ip", "-o", "link", "show", "kn-natlab-web-0", check=False).stdout
                     and "kn-natlab-web-0" in netns.run("ip", "-o", "link", check=False).stdout, 20), proc.stderr.read() if proc.poll() is not None else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    err = proc.stderr.read()
    assert "accelerator:" in err and "running: " in err and "ifname=kn-natlab-web-0,script=no,downscript=no" in err
    assert not [p for p in netns.processes() if "qemu" in p]
    netns.kvmnet("destroy", str(TOPOLOGY))
