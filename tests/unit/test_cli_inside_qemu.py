"""A topology of user-mode and socket networks has nothing on the host: plan and status say
the same thing about it (it lives inside QEMU), not "in sync" from one and "nothing applied"
from the other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def kvmnet(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvmnet.cli", "--state-dir", str(state), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("name, nets", [("user", "slirp (user)"), ("socket", "pair (socket), segment (socket)")])
def test_plan_and_status_agree(tmp_path, name, nets):
    file = str(ROOT / "topologies" / f"{name}.toml")
    want = (f"{name}: nothing to apply on this host: its networks live inside QEMU ({nets}); "
            f"`kvmnet qemu-args {file} GUEST` prints a guest's options\n")
    for verb in ("plan", "status"):
        res = kvmnet(tmp_path, verb, file)
        assert (res.returncode, res.stdout, res.stderr) == (0, want, ""), verb


def test_a_bridged_topology_not_applied_is_still_reported_as_such(tmp_path):
    res = kvmnet(tmp_path, "status", str(ROOT / "topologies" / "nat.toml"))
    assert (res.returncode, res.stdout) == (0, f"nothing applied (state dir {tmp_path})\n")
