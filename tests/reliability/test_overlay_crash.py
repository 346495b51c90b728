"""Crash safety and lost state on a stretched network's host: SIGKILL the apply at every step
boundary (the VXLAN device, its flooding entries, kvmnet's FRR); the next apply converges, check
is clean, and destroy leaves the namespace exactly as it was, with no FRR daemon left. And with the
state dir lost, `destroy --force` removes the VXLAN device and stops FRR."""

import json
import shutil
from pathlib import Path

import pytest

from helpers.netns import ROOT, snapshot_diff

pytestmark = pytest.mark.root
THREE = ROOT / "tests" / "data" / "multihost" / "three.toml"
CASES = {"static-gateway": ("10.200.0.1", "static"), "evpn-other": ("10.200.0.2", "evpn")}


def _topology(tmp_path: Path, control: str) -> Path:
    path = tmp_path / "multihost.toml"
    path.write_text(THREE.read_text().replace('control = "static"', f'control = "{control}"'))
    return path


def _frr(netns) -> list[str]:
    return [p for p in netns.processes() if p.endswith(("zebra", "bgpd"))]


def _converges(netns, topo: Path, before: dict) -> str | None:
    res = netns.kvmnet("apply", str(topo))
    if res.returncode != 0:
        return f"apply after crash failed: {res.stderr}"
    check = netns.kvmnet("check", str(topo))
    if check.returncode != 0:
        return f"not in sync after apply: {check.stdout}"
    res = netns.kvmnet("destroy", str(topo))
    if res.returncode != 0:
        return f"destroy failed: {res.stderr}"
    after = netns.snapshot()
    return None if after == before else "destroy left a difference:\n" + snapshot_diff(before, after)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigkill_at_every_apply_step_boundary(netns, tmp_path, case):
    addr, control = CASES[case]
    if control == "evpn" and not Path("/usr/lib/frr/bgpd").exists():
        pytest.skip("needs Debian's frr")
    netns.add_uplink("eth0", f"{addr}/24", None)
    topo = _topology(tmp_path, control)
    before = netns.snapshot()
    steps = json.loads(netns.kvmnet("plan", "--json", str(topo)).stdout)["steps"]
    assert any(s["do"]["op"] == "vxlan.add" for s in steps)
    failures = []
    for point in [str(k) for k in range(len(steps))] + [f"{k}+" for k in range(len(steps))]:
        res = netns.kvmnet("apply", str(topo), env={"KVMNET_CRASH_AT": point})
        if res.returncode not in (-9, 137):
            failures.append(f"apply point {point}: exit {res.returncode}, not killed: {res.stderr}")
            continue
        why = _converges(netns, topo, before)
        if why:
            failures.append(f"apply point {point}: {why}")
    assert not failures, "\n".join(failures)
    assert _frr(netns) == []


def test_destroy_force_without_state_removes_vxlan_and_stops_frr(netns, tmp_path):
    if not Path("/usr/lib/frr/bgpd").exists():
        pytest.skip("needs Debian's frr")
    netns.add_uplink("eth0", "10.200.0.3/24", None)
    topo = _topology(tmp_path, "evpn")
    before = netns.snapshot()
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    assert len(_frr(netns)) == 2 and "kvx4242" in netns.run("ip", "link").stdout
    shutil.rmtree(netns.state_dir / "multihost" / "frr")  # pid files and config gone too
    (netns.state_dir / "multihost" / "state.json").unlink()
    res = netns.kvmnet("destroy", "--force", str(topo))
    assert res.returncode == 0, res.stderr
    assert _frr(netns) == []
    after = netns.snapshot()
    assert after == before, snapshot_diff(before, after)
