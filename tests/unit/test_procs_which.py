"""host/procs.which: shutil.which's answer for a command name, without importing shutil."""

from __future__ import annotations

import os
import shutil

import pytest

from kvmnet.host import procs


@pytest.fixture
def path(tmp_path, monkeypatch):
    """A PATH of: a dir with a non-executable `tool` and a dir named `nft`, then one where both are
    executables, then a missing dir and an empty entry (the cwd, as POSIX reads it)."""
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "nft").mkdir(parents=True)
    (first / "tool").write_text("")
    second.mkdir()
    for name in ("tool", "nft"):
        (second / name).write_text("#!/bin/sh\n")
        (second / name).chmod(0o755)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "here").write_text("#!/bin/sh\n")
    (cwd / "here").chmod(0o755)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PATH", os.pathsep.join([str(first), str(second), str(tmp_path / "none"), ""]))
    return second


@pytest.mark.parametrize("name", ["tool", "nft", "here", "missing"])
def test_which_answers_as_shutil_does(path, name):
    assert procs.which(name) == shutil.which(name)
    assert (procs.which(name) is None) == (name == "missing")


def test_an_executable_is_found_in_the_first_dir_that_has_one(path):
    assert procs.which("tool") == str(path / "tool")  # not a's: it cannot be run
    assert procs.which("nft") == str(path / "nft")  # not a's: a directory


def test_an_empty_path_finds_nothing_and_an_unset_one_the_systems(path, monkeypatch):
    """PATH="" is no directory, not the cwd (`here` is an executable there); without PATH the
    system's default path is searched, as shutil does."""
    monkeypatch.setenv("PATH", "")
    assert procs.which("here") is None and shutil.which("here") is None
    monkeypatch.delenv("PATH")
    assert procs.which("sh") == shutil.which("sh") and procs.which("sh") is not None
