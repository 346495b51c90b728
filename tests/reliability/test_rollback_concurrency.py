"""Rollback at every step, and many kvmnet processes at once."""

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.netns import ROOT, snapshot_diff

pytestmark = pytest.mark.root
TOPOLOGY = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"
VENV_BIN = Path(os.sys.executable).parent


def _steps(netns):
    return json.loads(netns.kvmnet("plan", "--json", str(TOPOLOGY)).stdout)["steps"]


def _master(netns, link):
    out = netns.run("ip", "-o", "link", "show", link, check=False).stdout
    return out.split(" master ")[1].split()[0] if " master " in out else None


def _fw_and_dnsmasq(netns):
    return netns.run("nft", "list", "ruleset").stdout, sorted(p for p in netns.processes() if p.endswith("dnsmasq"))


def test_failure_at_every_step_rolls_back_exactly(netns, report):
    netns.add_uplink("wan0", "10.0.0.2/24", "10.0.0.1")
    before = netns.snapshot()
    n = len(_steps(netns))
    failures = []
    for k in range(n):
        res = netns.kvmnet("apply", str(TOPOLOGY), env={"KVMNET_FAULT_AT": str(k)})
        after = netns.snapshot()
        if res.returncode != 1 or "injected fault" not in res.stderr:
            failures.append(f"step {k}: exit {res.returncode}: {res.stderr}")
        elif after != before:
            failures.append(f"step {k}:\n" + snapshot_diff(before, after))
    report.add("failure injected at step k rolls back to the prior snapshot", n, n - len(failures), "nat-lab")
    assert not failures, "\n".join(failures)


def test_fifty_hooks_at_once_then_fifty_ifdowns(netns, report):
    before = netns.snapshot()
    taps = [f"q{i}" for i in range(50)]
    netns.sh("; ".join(f"ip tuntap add dev {t} mode tap" for t in taps))
    env = dict(os.environ, KVMNET_STATE_DIR=str(netns.state_dir), KVMNET_TOPOLOGY=str(TOPOLOGY), KVMNET_NETWORK="default")
    hook = lambda name, tap: netns.run(str(VENV_BIN / name), tap, env=env, check=False)  # noqa: E731
    with ThreadPoolExecutor(50) as pool:  # the network is not applied yet: the first hook applies it
        ups = list(pool.map(lambda t: hook("kvmnet-ifup", t), taps))
    attached = sum(_master(netns, t) == "virbr0" for t in taps)
    ruleset, dnsmasqs = _fw_and_dnsmasq(netns)
    with ThreadPoolExecutor(50) as pool:
        downs = list(pool.map(lambda t: hook("kvmnet-ifdown", t), taps))
    detached = sum(_master(netns, t) is None for t in taps)
    errors = [r.stderr for r in ups + downs if r.returncode]
    report.add("50 concurrent kvmnet-ifup on an unapplied network", 50, attached, f"{len(dnsmasqs)} dnsmasq, "
               f"{ruleset.count('masquerade to :1024-65535')} copy of each rule, {len(errors)} errors")
    report.add("50 concurrent kvmnet-ifdown", 50, detached)
    assert not errors, errors[:3]
    assert attached == 50 and detached == 50
    assert len(dnsmasqs) == 1 and ruleset.count("masquerade to :1024-65535") == 1
    assert _fw_and_dnsmasq(netns) == (ruleset, dnsmasqs)  # the network stays for other guests
    netns.sh("; ".join(f"ip link del {t}" for t in taps))
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0
    assert netns.snapshot() == before


def test_two_concurrent_applies(netns, report):
    trials, ok = 5, 0
    for _ in range(trials):
        results = []
        threads = [threading.Thread(target=lambda: results.append(netns.kvmnet("apply", str(TOPOLOGY)))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        synced = netns.kvmnet("check", str(TOPOLOGY)).returncode == 0
        if [r.returncode for r in results] == [0, 0] and sum("already in sync" in r.stdout for r in results) == 1 and synced:
            ok += 1
        netns.kvmnet("destroy", str(TOPOLOGY))
    report.add("two concurrent applies: one waits, result identical", trials, ok)
    assert ok == trials
