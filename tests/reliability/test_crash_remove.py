"""Crash safety of a removal: the apply that removes a guest (its tap, its forwards, its static
lease) is SIGKILLed at every step boundary. Each removal leaves the record in a write of its
own right after it (engine/transaction.py: a delete run again after a crash may find the name
someone else's). From each point both ways out must work: an apply of the edited file converges
(and `check` is clean, the removed tap no longer recorded), and so does a destroy (the namespace
exactly as before)."""

import json
import re

import pytest

from helpers.netns import ROOT, snapshot_diff

pytestmark = pytest.mark.root
FULL = (ROOT / "tests" / "data" / "topologies" / "nat-lab.toml").read_text()
# without the guest `web` and the forwards to it
LESS = re.sub(r"\[guests\.web\]\n\[\[guests\.web\.nics\]\]\n(?:[a-z]+ = .*\n)+\n?", "",
              re.sub(r"\[\[networks\.default\.forwards\]\]\n(?:[a-z_]+ = .*\n)+\n?", "", FULL))


def _record(netns) -> dict:
    return json.loads((netns.state_dir / "natlab" / "state.json").read_text())


def _killed_removal(netns, topo, point: str) -> str | None:
    """Apply the full file, then the edited one killed at `point`: None, or what went wrong."""
    topo.write_text(FULL)
    if netns.kvmnet("apply", str(topo)).returncode != 0:
        return "the full file did not apply"
    topo.write_text(LESS)
    res = netns.kvmnet("apply", str(topo), env={"KVMNET_CRASH_AT": point})
    return None if res.returncode in (-9, 137) else f"not killed: exit {res.returncode}: {res.stderr}"


def test_sigkill_at_every_step_of_a_removal(netns, tmp_path, report):
    assert "web" not in LESS and "forwards" not in LESS and "[guests.other]" in LESS
    netns.add_uplink("wan0", "10.0.0.2/24", "10.0.0.1")
    before = netns.snapshot()
    topo = tmp_path / "natlab.toml"
    topo.write_text(FULL)
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    topo.write_text(LESS)
    steps = json.loads(netns.kvmnet("plan", "--json", str(topo)).stdout)["steps"]
    removed = [s["do"]["args"]["name"] for s in steps if s["do"]["op"] == "link.del"]
    assert len(removed) == 1, steps
    failures = []
    points = [str(k) for k in range(len(steps))] + [f"{k}+" for k in range(len(steps))]
    for point in points:
        why = _killed_removal(netns, topo, point)
        if why is None:  # out by applying the edited file again
            if netns.kvmnet("apply", str(topo)).returncode != 0 or netns.kvmnet("check", str(topo)).returncode != 0:
                why = "the edited file did not converge"
            elif any(removed[0] in key for key, _ in _record(netns)["entries"]):
                why = "the removed tap is still recorded after a converged apply"
        if why is None:
            why = _killed_removal(netns, topo, point)
        if why is None:  # out by destroying
            res = netns.kvmnet("destroy", str(topo))
            after = netns.snapshot()
            why = f"destroy failed: {res.stderr}" if res.returncode else \
                None if after == before else "destroy left a difference:\n" + snapshot_diff(before, after)
        if why:
            failures.append(f"point {point}: {why}")
    report.add("SIGKILL at each step of an apply removing a guest, then apply or destroy", len(points),
               len(points) - len(failures), f"{len(steps)} steps (tap, forwards, lease)")
    assert len(points) >= 6 and not failures, "\n".join(failures)
