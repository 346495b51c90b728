"""kvmnet trusts only a state dir it could have written itself: owned by root (or the user
running it), writable by nobody else, with safe directories above it and no symlinks in it.
Anything else is refused (exit 2) before a byte of it is read or changed. The host here is
the in-memory FakeHost: a refusal that failed would still touch nothing real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import record as records, statedir
from kvmnet.host.files import UnsafeState

ROOT = Path(__file__).resolve().parents[2]
NAT = ROOT / "topologies" / "nat.toml"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chowns files to another user")
NOBODY = 65534


def _host():
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")


def _applied(root: Path) -> FakeHost:
    host = _host()
    engine.apply(config.load(str(NAT)), str(root), host=host)
    host.ran.clear()
    return host


def _refused(root: Path, host: FakeHost) -> str:
    before = host.state()
    with pytest.raises(UnsafeState) as exc:
        with statedir.locked(str(root)):
            engine.destroy("nat", str(root), host=host)
    assert host.ran == [] and host.state() == before
    assert exc.value.exit_code == 2
    return str(exc.value)


@needs_root
def test_a_state_dir_another_user_owns_is_refused(tmp_path):
    root = tmp_path / "s"
    host = _applied(root)
    os.chown(root, NOBODY, NOBODY)
    assert _refused(root, host).startswith(f"{root}: owned by uid {NOBODY}; kvmnet runs what its state dir "
                                           "records as root, so it trusts only a state dir")


def test_a_world_writable_state_dir_is_refused(tmp_path):
    root = tmp_path / "s"
    host = _applied(root)
    root.chmod(0o777)
    assert _refused(root, host).startswith(f"{root}: writable by group or others (mode 777)")


@needs_root
def test_a_record_another_user_wrote_is_refused(tmp_path):
    root = tmp_path / "s"
    host = _applied(root)
    os.chown(root / "nat" / "state.json", NOBODY, NOBODY)
    assert _refused(root, host).startswith(f"{root}/nat/state.json: owned by uid {NOBODY}")


def test_a_group_writable_record_is_refused(tmp_path):
    root = tmp_path / "s"
    host = _applied(root)
    (root / "nat" / "state.json").chmod(0o620)
    assert _refused(root, host).startswith(f"{root}/nat/state.json: writable by group or others (mode 620)")


def test_a_symlinked_record_is_refused(tmp_path):
    root = tmp_path / "s"
    host = _applied(root)
    real = tmp_path / "elsewhere.json"
    (root / "nat" / "state.json").rename(real)
    (root / "nat" / "state.json").symlink_to(real)
    assert _refused(root, host).startswith(f"{root}/nat/state.json: a symlink")


def test_a_symlinked_state_dir_is_refused(tmp_path):
    host = _applied(tmp_path / "real")
    (tmp_path / "s").symlink_to(tmp_path / "real")
    assert _refused(tmp_path / "s", host).startswith(f"{tmp_path}/s: a symlink")


def test_a_state_dir_under_a_world_writable_non_sticky_dir_is_refused(tmp_path):
    host = _applied(tmp_path / "open" / "s")
    (tmp_path / "open").chmod(0o777)
    assert _refused(tmp_path / "open" / "s", host).startswith(
        f"{tmp_path}/open: writable by group or others and not sticky (a directory above the state dir)")


def test_the_stale_temp_sweep_never_follows_a_symlinked_topology_dir(tmp_path):
    """The reproduced attack: <state>/<topology> -> a root directory; even `plan` swept its
    *.tmp* files. Now the symlink is refused and the files stay."""
    root = tmp_path / "s"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important.tmp.1").write_text("keep me")
    root.mkdir(mode=0o700)
    (root / "nat").symlink_to(victim)
    with pytest.raises(UnsafeState) as exc:
        engine.compute(config.load(str(NAT)), str(root), host=_host())
    assert str(exc.value).startswith(f"{root}/nat: a symlink")
    assert (victim / "important.tmp.1").read_text() == "keep me"


def test_the_sweep_removes_only_temp_files_of_the_topology_dir_itself(tmp_path):
    root = tmp_path / "s"
    _applied(root)
    outside = tmp_path / "outside.tmp.5"
    outside.write_text("not ours")
    (root / "nat" / "link.tmp.7").symlink_to(outside)
    (root / "nat" / "state.json.tmp.99").write_text("half")
    (root / "nat" / "notes.txt").write_text("kept")
    records.clear_stale(str(root), "nat")
    assert sorted(p.name for p in (root / "nat").iterdir() if not p.name.startswith("source-")) == [
        "hooks", "link.tmp.7", "notes.txt", "state.json"]
    assert outside.read_text() == "not ours"


def test_a_read_only_verb_creates_nothing(tmp_path):
    root = tmp_path / "s"
    with statedir.locked(str(root), shared=True):
        engine.compute(config.load(str(NAT)), str(root), host=_host())
    assert not root.exists()


@needs_root
def test_the_cli_refuses_an_attackers_state_dir_and_runs_nothing(tmp_path):
    """The reproduced escalation: a user-made state dir whose record names the user's script.
    `kvmnet status` (no host access) reads the record; it must refuse, exit 2, no traceback."""
    root = tmp_path / "s"
    (root / "nat").mkdir(parents=True)
    record = {"version": 1, "topology": "nat", "file": str(NAT), "entries": [
        ["dnsmasq:default", {"op": "dnsmasq.stop", "args": {"network": "default", "exe": "/tmp/evil.sh"}}]]}
    (root / "nat" / "state.json").write_text(json.dumps(record))
    for p in (root, root / "nat", root / "nat" / "state.json"):
        os.chown(p, NOBODY, NOBODY)
    res = subprocess.run([sys.executable, "-m", "kvmnet.cli", "--state-dir", str(root), "status"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"{root}: owned by uid {NOBODY}; kvmnet runs what its state dir records as root")


@needs_root
@pytest.mark.parametrize("link_owner,holder_mode,refused", [
    (NOBODY, 0o755, "a symlink owned by uid 65534 (above the state dir)"),
    (0, 0o777, "a symlink in a directory others may write (above the state dir)"),
    (0, 0o1777, None),  # sticky (/tmp): only root may rename root's link
    (0, 0o755, None),  # /var/run -> /run
])
def test_a_symlink_above_the_state_dir_must_be_one_only_root_controls(tmp_path, link_owner, holder_mode, refused):
    """The string path goes on to dnsmasq (--conf-file) and the paths in its conf: a link another
    user may repoint would let them swap the conf root wrote for one that runs their script."""
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    holder = tmp_path / "shared"
    holder.mkdir()
    (holder / "k").symlink_to(real)
    os.lchown(holder / "k", link_owner, link_owner)
    holder.chmod(holder_mode)
    state = holder / "k" / "state"
    if refused is None:
        engine.apply(config.load(str(NAT)), str(state), host=_host())
        assert (real / "state" / "nat" / "state.json").exists()
        return
    host = _host()
    with pytest.raises(UnsafeState) as exc:
        engine.apply(config.load(str(NAT)), str(state), host=host)
    assert str(exc.value).startswith(f"{holder / 'k'}: {refused}")
    assert host.ran == [] and not (real / "state").exists()


@needs_root
def test_a_root_link_to_a_users_link_is_refused(tmp_path):
    """The link's own owner and directory pass; the link its target passes through is a user's."""
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "hop").symlink_to(real)
    os.lchown(tmp_path / "users" / "hop", NOBODY, NOBODY)
    (tmp_path / "k").symlink_to("users/hop")  # relative, as /var/run -> ../run
    host = _host()
    with pytest.raises(UnsafeState) as exc:
        engine.apply(config.load(str(NAT)), str(tmp_path / "k" / "state"), host=host)
    assert str(exc.value).startswith(f"{tmp_path}/users/hop: a symlink owned by uid {NOBODY}")
    assert host.ran == [] and not (real / "state").exists()
    os.lchown(tmp_path / "users" / "hop", 0, 0)  # root's all the way: taken
    engine.apply(config.load(str(NAT)), str(tmp_path / "k" / "state"), host=_host())
    assert (real / "state" / "nat" / "state.json").exists()


def test_a_file_where_a_directory_above_the_state_dir_should_be_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    host = _host()
    with pytest.raises(UnsafeState) as exc:
        engine.apply(config.load(str(NAT)), str(tmp_path / "f" / "state"), host=host)
    assert str(exc.value).startswith(f"{tmp_path}/f: not a directory")
    assert host.ran == []
