"""The element delta (a forward added to an applied topology: firewall.elements) under faults:
an injected failure before or right after any step of that apply (or of the one removing it
again) rolls back to the table as it
was, element for element (the inverse delta, no reload); SIGKILL at any of those points is
followed by an apply that converges to what a full load gives, a clean check and an exact destroy."""

import json

import pytest

from helpers.netns import snapshot_diff
from integration.test_firewall_delta_netns import TABLE, _table, _topology

pytestmark = pytest.mark.root


def _state(netns) -> str:
    return (netns.state_dir / "delta" / "state.json").read_text()


def _faults(netns, topo, extra: bool) -> tuple[list[str], list[str]]:
    """Inject a failure before and after each step of the apply that makes the topology have
    (extra) or not have the forward: each rolls back to the table and record as they were, and
    the next plan is the same delta."""
    topo.write_text(_topology(not extra))
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    handles, listing = _table(netns)
    record = json.loads(_state(netns))
    topo.write_text(_topology(extra))
    steps = json.loads(netns.kvmnet("plan", "--json", str(topo)).stdout)["steps"]
    assert "firewall.elements" in [s["do"]["op"] for s in steps], steps
    failures, points = [], [str(k) for k in range(len(steps))] + [f"{k}+" for k in range(len(steps))]
    for point in points:
        res = netns.kvmnet("apply", str(topo), env={"KVMNET_FAULT_AT": point})
        if res.returncode != 1 or point != "0" and "rolled back" not in res.stdout + res.stderr:
            failures.append(f"fault {point}: exit {res.returncode}: {res.stdout + res.stderr}")
        if _table(netns) != (handles, listing):
            failures.append(f"fault {point} ({'add' if extra else 'remove'}): the table is not as it was")
        if json.loads(_state(netns)) != record:
            failures.append(f"fault {point} ({'add' if extra else 'remove'}): the record is not as it was")
        replan = [s["do"]["op"] for s in json.loads(netns.kvmnet("plan", "--json", str(topo)).stdout)["steps"]]
        if "firewall.apply" in replan or "firewall.elements" not in replan:
            failures.append(f"fault {point} ({'add' if extra else 'remove'}): next plan {replan}, not the same delta")
    return failures, points


def test_faults_and_sigkill_around_the_element_delta(netns, tmp_path, report):
    before = netns.snapshot()
    topo = tmp_path / "delta.toml"
    failures, points = _faults(netns, topo, extra=True)  # the points of the apply adding the forward
    failures += _faults(netns, topo, extra=False)[0]
    topo.write_text(_topology(extra=False))
    netns.run("nft", "delete", "table", "inet", TABLE)
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    _, full_base = _table(netns)
    topo.write_text(_topology(extra=True))
    netns.run("nft", "delete", "table", "inet", TABLE)
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    _, full_extra = _table(netns)
    for point in points:  # SIGKILL: the next apply converges
        topo.write_text(_topology(extra=False))
        assert netns.kvmnet("apply", str(topo)).returncode == 0 and _table(netns)[1] == full_base
        topo.write_text(_topology(extra=True))
        res = netns.kvmnet("apply", str(topo), env={"KVMNET_CRASH_AT": point})
        if res.returncode not in (-9, 137):
            failures.append(f"kill {point}: exit {res.returncode}, not killed: {res.stderr}")
            continue
        again = netns.kvmnet("apply", str(topo))
        check = netns.kvmnet("check", str(topo))
        if again.returncode != 0 or check.returncode != 0 or _table(netns)[1] != full_extra:
            failures.append(f"kill {point}: did not converge: {again.stdout + again.stderr + check.stdout}")
    assert netns.kvmnet("destroy", str(topo)).returncode == 0
    after = netns.snapshot()
    if after != before:
        failures.append("destroy left a difference:\n" + snapshot_diff(before, after))
    trials = 3 * len(points)
    report.add("element delta: fault and SIGKILL before/after each step, rolled back or converged", trials,
               trials - len(failures), f"{len(points) // 2} steps (tap, nft element delta, dnsmasq reload), both ways")
    assert not failures, "\n".join(failures)
