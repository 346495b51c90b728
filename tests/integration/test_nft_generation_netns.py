"""A no-op re-apply starts no `nft` process while nftables' generation has not moved since the
listing kvmnet keeps in its record; any nftables commit moves it (another table's too), and then
the table is listed again, so drift inside kvmnet's table is still found and repaired."""

import os
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "data" / "topologies" / "nat-lab.toml"
TABLE = "kvmnet_natlab"


@pytest.fixture
def counted(tmp_path):
    """(env whose PATH finds an `nft` that logs each run and then runs the real one, the log)."""
    shim, log = tmp_path / "bin", tmp_path / "nft.log"
    shim.mkdir()
    real = next(p for d in os.environ["PATH"].split(":") if (p := Path(d) / "nft").exists())
    (shim / "nft").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (shim / "nft").chmod(stat.S_IRWXU)
    # the CLI, not libnftables in-process (host/nft_cmd.py): only processes can be counted here
    return {"PATH": f"{shim}:{os.environ['PATH']}", "KVMNET_NFT_CLI": "1"}, log


def _runs(log: Path) -> list[str]:
    runs = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return runs


def test_noop_reapply_lists_nothing_until_nftables_changes(netns, counted):
    env, log = counted
    assert netns.kvmnet("apply", str(TOPOLOGY), env=env).returncode == 0
    assert any(r.startswith("-f") for r in _runs(log))
    again = netns.kvmnet("apply", str(TOPOLOGY), env=env)
    assert "nothing changed" in again.stdout, again.stdout + again.stderr
    assert _runs(log) == []  # the generation stands: the kept listing holds
    netns.run("nft", "add table inet someone_else")  # any commit moves the generation
    again = netns.kvmnet("apply", str(TOPOLOGY), env=env)
    assert "nothing changed" in again.stdout and any("list table inet " + TABLE in r for r in _runs(log))
    netns.run("nft", f"add chain inet {TABLE} extra")  # drift inside kvmnet's own table
    fixed = netns.kvmnet("apply", str(TOPOLOGY), env=env)
    assert fixed.returncode == 0 and "load firewall rules" in fixed.stdout, fixed.stdout + fixed.stderr
    assert "extra" not in netns.run("nft", "list", "table", "inet", TABLE).stdout
    netns.run("nft", "delete table inet someone_else")
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0


# what a full listing of kvmnet's table shows now (host/nftables.observe without anything known)
OBSERVE = ("import json; from kvmnet.host import nftables; "
           f"print(json.dumps({{k: v for k, v in nftables.observe('{TABLE}', False).items() if k != 'stamp'}}))")


def test_after_a_full_load_the_verify_lists_without_elements_and_keeps_what_a_listing_shows(netns, counted):
    import json
    import sys
    env, log = counted
    assert netns.kvmnet("apply", str(TOPOLOGY), env=env).returncode == 0
    runs = _runs(log)
    # the observation before (the table is not there yet), the load, the verify without elements
    assert runs[-2:] == ["-f -", f"-j -t list table inet {TABLE}"], runs
    state = json.loads(next(netns.state_dir.glob("*/state.json")).read_text())
    kept = {k: v for k, v in state["nft_seen"].items() if k != "stamp"}
    full = netns.run(sys.executable, "-c", OBSERVE, env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
    assert kept == json.loads(full.stdout) and kept["elements"], (kept, full.stdout)
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0
