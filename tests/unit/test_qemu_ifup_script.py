"""scripts/qemu-ifup, the drop-in QEMU runs as root for a tap without script= (and, under the
name qemu-ifdown, without downscript=): it runs kvmnet's hook only from the system's bin
directories (here, a copy of the script pointed at temp ones), never one found on the caller's
$PATH, never a tool planted there, never with the caller's PYTHONPATH, and never a hook another
user could have replaced."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="checks root ownership: files made by root")


@pytest.fixture
def installed(tmp_path):
    """The script installed as /etc would hold it (a copy; qemu-ifdown a second name), its
    HOOK_DIRS pointed at bin/, and hooks there that say which ran, with what, under which PYTHONPATH."""
    etc, bin_dir = tmp_path / "etc", tmp_path / "bin"
    etc.mkdir()
    bin_dir.mkdir()
    text = (ROOT / "scripts" / "qemu-ifup").read_text()
    assert 'HOOK_DIRS="/usr/local/bin /usr/bin"\n' in text
    (etc / "qemu-ifup").write_text(text.replace('HOOK_DIRS="/usr/local/bin /usr/bin"', f'HOOK_DIRS="{bin_dir}"'))
    (etc / "qemu-ifup").chmod(0o755)
    (etc / "qemu-ifdown").symlink_to("qemu-ifup")
    for hook in ("kvmnet-ifup", "kvmnet-ifdown"):
        (bin_dir / hook).write_text(f"#!/bin/sh\necho {hook} \"$@\" \"[$PYTHONPATH]\"\n")
        (bin_dir / hook).chmod(0o755)
    return tmp_path


def run(script: Path, path: str | None = None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), "tap0"], capture_output=True, text=True,
                          env=dict(os.environ, PATH=path or os.environ["PATH"], **env))


def test_each_name_runs_its_own_hook_without_the_callers_pythonpath(installed):
    assert run(installed / "etc" / "qemu-ifup", PYTHONPATH="/home/alice/x").stdout == "kvmnet-ifup tap0 []\n"
    assert run(installed / "etc" / "qemu-ifdown").stdout == "kvmnet-ifdown tap0 []\n"


def test_nothing_on_the_callers_path_is_run(installed, tmp_path_factory):
    planted = tmp_path_factory.mktemp("planted")
    marker = planted / "ran"
    for tool in ("kvmnet-ifup", "basename", "dirname", "readlink", "stat", "env"):
        (planted / tool).write_text(f"#!/bin/sh\necho {tool} >> {marker}\nexit 0\n")
        (planted / tool).chmod(0o755)
    res = run(installed / "etc" / "qemu-ifup", f"{planted}:{os.environ['PATH']}")
    assert res.stdout == "kvmnet-ifup tap0 []\n" and not marker.exists()
    (installed / "bin" / "kvmnet-ifup").unlink()
    res = run(installed / "etc" / "qemu-ifup", f"{planted}:{os.environ['PATH']}")
    assert res.returncode == 1 and res.stdout == "" and "no kvmnet-ifup in" in res.stderr
    assert not marker.exists()


def test_a_hook_linked_from_a_root_owned_venv_runs(installed):
    venv = installed / "opt" / "venv" / "bin"
    venv.mkdir(parents=True)
    (installed / "bin" / "kvmnet-ifup").rename(venv / "kvmnet-ifup")
    (installed / "bin" / "kvmnet-ifup").symlink_to(venv / "kvmnet-ifup")
    assert run(installed / "etc" / "qemu-ifup").stdout == "kvmnet-ifup tap0 []\n"


@pytest.mark.parametrize("what", ["hook writable by others", "its directory writable by others", "a user's hook",
                                  "a link to a user's file", "a link into a directory others may write"])
def test_a_hook_someone_else_may_replace_is_refused(installed, what):
    hook = installed / "bin" / "kvmnet-ifup"
    if what == "hook writable by others":
        hook.chmod(0o757)
    elif what == "its directory writable by others":
        hook.parent.chmod(0o777)
    elif what == "a user's hook":
        os.chown(hook, NOBODY, NOBODY)
    else:
        target_dir = installed / "elsewhere"
        target_dir.mkdir()
        hook.rename(target_dir / "kvmnet-ifup")
        hook.symlink_to(target_dir / "kvmnet-ifup")
        if what == "a link to a user's file":
            os.chown(target_dir / "kvmnet-ifup", NOBODY, NOBODY)
        else:
            target_dir.chmod(0o1777)
    res = run(installed / "etc" / "qemu-ifup")
    assert res.returncode == 1 and res.stdout == "", res.stdout
    assert f"not running {installed}/bin/kvmnet-ifup: root must own it" in res.stderr
