"""A corrupt record affects only its own topology: destroy (with or without --force) of another
topology goes on, `status` lists it as corrupt and exits 0, and it never gives a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine.record import CorruptRecord

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED = ROOT / "topologies" / "nat.toml", ROOT / "topologies" / "routed.toml"
HINT = "; `kvmnet destroy --force FILE` removes what kvmnet made from its names"


def _two_applied(root: Path) -> FakeHost:
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    for path in (NAT, ROUTED):
        engine.apply(config.load(str(path)), str(root), host=host)
    (root / "nat" / "state.json").write_text(json.dumps({"version": 1, "topology": "nat", "entries": [["k"]]}))
    return host


@pytest.mark.parametrize("force", [False, True])
def test_a_corrupt_record_does_not_block_destroying_another_topology(force, tmp_path):
    host = _two_applied(tmp_path)
    routed = config.load(str(ROUTED))
    forced = engine.forced_record(routed, str(tmp_path), host=host) if force else None
    engine.destroy("routed", str(tmp_path), forced, host=host)
    assert not (tmp_path / "routed").exists()
    assert "virbr0" in host.links_ and "kvmrt0" not in host.links_
    with pytest.raises(CorruptRecord):  # its own topology still says what is wrong
        engine.destroy("nat", str(tmp_path), host=host)


def _status(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvmnet.cli", "--state-dir", str(root), "status", *args],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_status_lists_a_corrupt_record_and_the_others(tmp_path):
    _two_applied(tmp_path)
    res = _status(tmp_path)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == (f"nat: {tmp_path}/nat/state.json: record is corrupt: entries[0] must be "
                        f"[key, undo step or null]{HINT}")
    assert lines[1].startswith(f"routed: ") and f"from {ROUTED}" in lines[1]
    res = _status(tmp_path, "--json")
    assert [t["topology"] for t in json.loads(res.stdout)["topologies"]] == ["routed", "nat"]
