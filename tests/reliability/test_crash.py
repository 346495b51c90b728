"""Crash safety: SIGKILL the apply at every step boundary (and at random moments); the next
apply must converge and destroy must leave the namespace exactly as it was."""

import json
import random
import subprocess
import time

import pytest

from helpers.netns import KVMNET, ROOT, snapshot_diff

pytestmark = pytest.mark.root
TOPOLOGY = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"


def _converges(netns, before) -> str | None:
    """None if apply converges, check is clean and destroy restores `before`; else why not."""
    res = netns.kvmnet("apply", str(TOPOLOGY))
    if res.returncode != 0:
        return f"apply after crash failed: {res.stderr}"
    check = netns.kvmnet("check", str(TOPOLOGY))
    if check.returncode != 0:
        return f"not in sync after apply: {check.stdout}"
    if len([p for p in netns.processes() if p.endswith("dnsmasq")]) != 1:
        return "not exactly one dnsmasq"
    res = netns.kvmnet("destroy", str(TOPOLOGY))
    if res.returncode != 0:
        return f"destroy failed: {res.stderr}"
    after = netns.snapshot()
    return None if after == before else "destroy left a difference:\n" + snapshot_diff(before, after)


def test_sigkill_at_every_step_boundary(netns, report):
    netns.add_uplink("wan0", "10.0.0.2/24", "10.0.0.1")
    before = netns.snapshot()
    steps = json.loads(netns.kvmnet("plan", "--json", str(TOPOLOGY)).stdout)["steps"]
    failures = []
    # before and right after every apply step, and before every destroy step
    points = [str(k) for k in range(len(steps))] + [f"{k}+" for k in range(len(steps))]
    for point in points:
        res = netns.kvmnet("apply", str(TOPOLOGY), env={"KVMNET_CRASH_AT": point})
        if res.returncode not in (-9, 137):
            failures.append(f"apply point {point}: exit {res.returncode}, not killed: {res.stderr}")
            continue
        why = _converges(netns, before)
        if why:
            failures.append(f"apply point {point}: {why}")
    destroy_points = []
    for k in range(100):  # every destroy step, until a destroy runs past the last one
        assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
        res = netns.kvmnet("destroy", str(TOPOLOGY), env={"KVMNET_CRASH_AT": f"d{k}"})
        if res.returncode == 0:
            break
        destroy_points.append(f"d{k}")
        if res.returncode not in (-9, 137):
            failures.append(f"destroy point d{k}: exit {res.returncode}: {res.stderr}")
            continue
        why = _converges(netns, before)
        if why:
            failures.append(f"destroy point d{k}: {why}")
    trials = len(points) + len(destroy_points)
    report.add("SIGKILL at each step boundary (apply and destroy), then converge", trials, trials - len(failures),
               f"{len(steps)} apply steps (nat-lab: forwards, 2 taps)")
    assert trials >= 20 and not failures, "\n".join(failures)


def test_sigkill_at_random_moments(netns, report):
    netns.add_uplink("wan0", "10.0.0.2/24", "10.0.0.1")
    before = netns.snapshot()
    rng = random.Random(20261124)
    failures, trials = [], 8
    env = dict(__import__("os").environ, KVMNET_STATE_DIR=str(netns.state_dir), PYTHONPATH=str(ROOT))
    for _ in range(trials):
        delay = rng.uniform(0.15, 0.6)  # interpreter start is ~0.15 s: land inside the work
        proc = subprocess.Popen(["ip", "netns", "exec", netns.name, *KVMNET, "apply", str(TOPOLOGY)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        subprocess.run(["pkill", "-9", "-f", f"kvmnet.cli apply {TOPOLOGY}"], check=False)
        proc.wait()
        why = _converges(netns, before)
        if why:
            failures.append(f"kill after {delay:.3f}s: {why}")
    report.add("SIGKILL at random moments of an apply", trials, trials - len(failures))
    assert not failures, "\n".join(failures)
