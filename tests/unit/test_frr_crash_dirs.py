"""FRR's crash dirs (/var/tmp/frr/<daemon>.<pid>) are removed as root at stop: never by
following a link a user swapped in mid-walk, and only from a /var/tmp/frr that is FRR's."""

import os

import pytest

from kvmnet.host import frr


@pytest.fixture
def tree(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret").write_text("keep")
    crash = tmp_path / "crash"
    (crash / "x").mkdir(parents=True)
    (crash / "x" / "secret").write_text("frr's")
    return crash, victim


def test_a_directory_swapped_for_a_link_mid_walk_is_not_walked_into(tree, monkeypatch):
    """The second listing (of x) is where a user swaps x for a link to another directory: a walk
    by path then unlinks x/secret in that directory as root."""
    crash, victim = tree
    calls = []
    real_listdir, real_scandir = os.listdir, os.scandir

    def swap_after_second_listing(real):
        def listing(*args, **kw):
            out = real(*args, **kw)
            calls.append(1)
            if len(calls) == 2:
                os.rename(crash / "x", crash.parent / "moved")
                os.symlink(victim, crash / "x")
            return out
        return listing

    monkeypatch.setattr(os, "listdir", swap_after_second_listing(real_listdir))
    monkeypatch.setattr(os, "scandir", swap_after_second_listing(real_scandir))
    try:
        frr._remove_tree(str(crash))
    except OSError:
        pass  # (refusing is fine; deleting the victim's file is not)
    assert len(calls) >= 2, "the swap never happened: the test proves nothing"
    assert (victim / "secret").read_text() == "keep"


def test_a_tree_is_removed_and_a_link_in_it_is_unlinked_not_followed(tree):
    crash, victim = tree
    os.symlink(victim, crash / "link")
    frr._remove_tree(str(crash))
    assert not crash.exists() and (victim / "secret").exists()


def test_a_link_a_file_or_nothing_at_the_path_is_left(tree, tmp_path):
    crash, victim = tree
    os.symlink(victim, tmp_path / "alink")
    (tmp_path / "afile").write_text("x")
    for name in ("alink", "afile", "missing"):
        frr._remove_tree(str(tmp_path / name))
    assert (victim / "secret").exists() and (tmp_path / "afile").exists() and (tmp_path / "alink").is_symlink()


@pytest.mark.parametrize("mode,link,trusted", [(0o700, False, True), (0o755, False, True), (0o777, False, False),
                                               (0o770, False, False), (0o700, True, False)])
def test_crash_dirs_are_removed_only_from_a_dir_nobody_else_can_write(tmp_path, monkeypatch, mode, link, trusted):
    real = tmp_path / "frr"
    real.mkdir()
    real.chmod(mode)
    path = tmp_path / "link-to-frr" if link else real
    if link:
        os.symlink(real, path)
    monkeypatch.setattr(frr, "CRASH_DIR", str(path))
    assert frr._crash_dir_trusted() is (trusted and os.geteuid() == real.stat().st_uid and os.geteuid() == 0)
