"""Trust and paths, for real in a namespace: an unprivileged user's read-only verbs, a state dir
another user prepared, and QEMU's hook (run from /) re-applying a file applied by a relative path."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers.netns import KVMNET, ROOT

pytestmark = pytest.mark.root
TOPOLOGY = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"
IFUP = str(Path(os.sys.executable).parent / "kvmnet-ifup")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _as_nobody(netns, state_dir, *args):
    env = dict(os.environ, KVMNET_STATE_DIR=str(state_dir), PYTHONPATH=str(ROOT))
    return netns.run(*NOBODY, *KVMNET, *args, env=env, check=False)


@pytest.fixture
def open_tmp():
    """A directory every user can reach (pytest's own tmp dirs are root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="kn-trust-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_read_only_verbs_of_an_unprivileged_user_say_what_is_missing(netns):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    before = netns.snapshot()
    for verb in (["plan", str(TOPOLOGY)], ["check", str(TOPOLOGY)], ["status"], ["leases"]):
        res = _as_nobody(netns, netns.state_dir, *verb)
        assert res.returncode == 1 and "Traceback" not in res.stderr, (verb, res.stderr)
        assert res.stderr == (f"kvmnet: cannot read kvmnet's state: {netns.state_dir}: Permission denied (it belongs "
                              "to root); run kvmnet as that user (sudo kvmnet ...), or pass a --state-dir you own\n")
    assert netns.snapshot() == before
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0


def test_read_only_verbs_work_unprivileged_on_a_state_dir_of_ones_own(netns, open_tmp):
    state = open_tmp / "state"
    res = _as_nobody(netns, state, "plan", str(TOPOLOGY))
    assert res.returncode == 0 and res.stdout.startswith("natlab: ") and "Traceback" not in res.stderr, res.stderr
    assert _as_nobody(netns, state, "status").stdout == f"nothing applied (state dir {state})\n"
    assert _as_nobody(netns, state, "leases").stdout == "no leases\n"
    assert not state.exists()  # read-only: not even the state dir or its lock was made


def test_a_state_dir_another_user_prepared_is_refused_and_nothing_runs(netns, open_tmp):
    """The reproduced escalation: a user's state dir whose record names the user's script."""
    state, marker, script = open_tmp / "state", open_tmp / "owned", open_tmp / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    (state / "natlab").mkdir(parents=True)
    undo = {"op": "dnsmasq.stop", "args": {"network": "default", "conf": "/x", "pid_file": "/x", "leases": "/x",
                                            "exe": str(script), "purge": False}}
    (state / "natlab" / "state.json").write_text(json.dumps(
        {"version": 1, "topology": "natlab", "file": str(TOPOLOGY), "entries": [["dnsmasq:default", undo]]}))
    for path in (state, state / "natlab", state / "natlab" / "state.json"):
        os.chown(path, 65534, 65534)
    before = netns.snapshot()
    for verb in ("apply", "destroy", "plan"):
        env = dict(KVMNET_STATE_DIR=str(state))
        res = netns.kvmnet(verb, str(TOPOLOGY), env=env)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (verb, res.stderr)
        assert res.stderr.startswith(f"{state}: owned by uid 65534; kvmnet runs what its state dir records as root")
    assert not marker.exists() and netns.snapshot() == before


def test_the_hook_run_from_root_finds_a_file_applied_by_a_relative_path(netns):
    """QEMU runs kvmnet-ifup from /: the recorded topology file must be absolute."""
    cwd = TOPOLOGY.parent.parent  # tests/data
    relative = str(TOPOLOGY.relative_to(cwd))
    env = dict(os.environ, KVMNET_STATE_DIR=str(netns.state_dir), PYTHONPATH=str(ROOT))
    assert netns.run(*KVMNET, "apply", relative, env=env, check=False, cwd=cwd).returncode == 0
    netns.sh("ip link del virbr0 && ip tuntap add dev tap9 mode tap")  # the hook must apply again
    res = netns.run(IFUP, "tap9", env=env, check=False, cwd="/")
    assert res.returncode == 0, res.stderr
    assert " master virbr0 " in netns.run("ip", "-o", "link", "show", "tap9").stdout
    assert json.loads((netns.state_dir / "natlab" / "state.json").read_text())["file"] == str(TOPOLOGY)
    netns.sh("ip link del tap9")
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0
