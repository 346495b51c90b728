"""scripts/qemu-ifup, the drop-in QEMU runs as root for a tap without script= (and, under the
name qemu-ifdown, without downscript=): it runs kvmnet's hook only from root's own places, never
one found on the caller's $PATH, and never one another user could have replaced."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_HOOKS = [f"{d}/kvmnet-{h}" for d in ("/usr/local/bin", "/usr/bin") for h in ("ifup", "ifdown")]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="checks root ownership: files made by root"),
    pytest.mark.skipif(any(os.path.exists(p) for p in SYSTEM_HOOKS), reason="kvmnet's hooks are installed system-wide here"),
]


@pytest.fixture
def checkout(tmp_path):
    """A root-owned checkout: scripts/qemu-ifup, qemu-ifdown -> qemu-ifup, and .venv/bin hooks
    that say which one ran, with what."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "qemu-ifup", tmp_path / "scripts" / "qemu-ifup")
    (tmp_path / "scripts" / "qemu-ifdown").symlink_to("qemu-ifup")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for hook in ("kvmnet-ifup", "kvmnet-ifdown"):
        (bin_dir / hook).write_text(f"#!/bin/sh\necho {hook} \"$@\"\n")
        (bin_dir / hook).chmod(0o755)
    return tmp_path


def run(script: Path, env_path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=env_path or os.environ["PATH"])
    return subprocess.run([str(script), "tap0"], capture_output=True, text=True, env=env)


def test_each_name_runs_its_own_hook(checkout):
    assert run(checkout / "scripts" / "qemu-ifup").stdout == "kvmnet-ifup tap0\n"
    assert run(checkout / "scripts" / "qemu-ifdown").stdout == "kvmnet-ifdown tap0\n"


def test_a_hook_on_the_callers_path_is_never_run(checkout, tmp_path_factory):
    planted = tmp_path_factory.mktemp("planted")
    (planted / "kvmnet-ifup").write_text("#!/bin/sh\necho planted\n")
    (planted / "kvmnet-ifup").chmod(0o755)
    res = run(checkout / "scripts" / "qemu-ifup", f"{planted}:{os.environ['PATH']}")
    assert res.stdout == "kvmnet-ifup tap0\n"
    shutil.rmtree(checkout / ".venv")
    res = run(checkout / "scripts" / "qemu-ifup", f"{planted}:{os.environ['PATH']}")
    assert res.returncode == 1 and res.stdout == "" and "no kvmnet-ifup to run" in res.stderr


@pytest.mark.parametrize("what", ["hook", "its directory", "a user's hook"])
def test_a_hook_someone_else_may_replace_is_refused(checkout, what):
    hook = checkout / ".venv" / "bin" / "kvmnet-ifup"
    if what == "hook":
        hook.chmod(0o757)
    elif what == "its directory":
        hook.parent.chmod(0o777)
    else:
        os.chown(hook, 65534, 65534)
    res = run(checkout / "scripts" / "qemu-ifup")
    assert res.returncode == 1 and res.stdout == "", res.stdout
    assert f"not running {checkout}/scripts/../.venv/bin/kvmnet-ifup: root must own it" in res.stderr
