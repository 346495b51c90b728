"""What `kvmnet validate` (and every verb that loads a file) is handed that is not a topology
file: a FIFO, a device, a directory, a file nested thousands of levels deep. Each is refused
with one line and exit 2, quickly, and never with a traceback."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from kvmnet import config
from kvmnet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "kvmnet.cli"]


def _memory_cap() -> None:
    """A reader of /dev/zero fails at 2 GiB instead of taking the shared machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def validate(path) -> subprocess.CompletedProcess:
    """In a child process with a timeout: the bug this guards against is a hang."""
    try:
        return subprocess.run(CLI + ["validate", str(path)], capture_output=True, text=True, timeout=20,
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=_memory_cap)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kvmnet validate {path} did not finish in 20 s")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "topo.toml"
    os.mkfifo(fifo)
    res = validate(fifo)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f"{fifo}: is a FIFO; a topology file must be a regular file\n"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_without_reading_it(device):
    res = validate(device)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f"{device}: is a character device; a topology file must be a regular file\n"


def test_a_symlink_to_a_regular_file_is_read(tmp_path, topo_dir):
    link = tmp_path / "nat.toml"
    link.symlink_to(topo_dir / "nat.toml")
    assert config.load(str(link)).name == "nat"


def test_a_symlink_to_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "topo.toml").symlink_to(tmp_path / "fifo")
    res = validate(tmp_path / "topo.toml")
    assert (res.returncode, res.stderr) == (2, f"{tmp_path / 'topo.toml'}: is a FIFO; a topology file must be a regular file\n")


@pytest.mark.parametrize("nesting", [
    "a = " + "[" * 100_000 + "]" * 100_000,
    "a = " + "{a=" * 50_000 + "}" * 50_000,
    "a = " + "[" * 900 + "]" * 900,
], ids=["arrays-200k", "inline-tables-200k", "arrays-900"])
def test_deep_nesting_is_a_clear_error(tmp_path, nesting):
    path = tmp_path / "deep.toml"
    path.write_text(nesting + "\n")
    res = validate(path)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f"{path}: arrays or inline tables are nested too deeply (a topology needs a few levels)\n"


def test_the_read_is_capped_even_when_the_size_is_not_known(tmp_path, monkeypatch):
    """A regular file that reports st_size 0 (as /proc files do) but has more: read no more
    than the limit allows, then refuse."""
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (config.MAX_FILE_BYTES + 10) + b"\n")
    real_fstat = os.fstat

    def zero_size(fd):
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 0,
                               st.st_atime, st.st_mtime, st.st_ctime))
    monkeypatch.setattr(os, "fstat", zero_size)
    with pytest.raises(InputError) as exc:
        config.load(str(path))
    assert str(exc.value) == f"{path}: file has more than {config.MAX_FILE_BYTES} bytes; topology files are at most {config.MAX_FILE_BYTES}"


@pytest.mark.parametrize("brk", ["\n", "\u2028", "\x85", "\x1b"])
def test_a_path_with_a_control_character_is_refused(tmp_path, brk):
    """The record and QEMU's hook index keep the path on one line: a line break in it (any that
    str.splitlines() knows) would add lines of its own ("network NAME BRIDGE") to the index."""
    path = tmp_path / f"lab.toml{brk}network default evil0"
    path.write_text((ROOT / "topologies" / "nat.toml").read_text())
    res = validate(path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().endswith("a topology file's path may not contain control characters")
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
