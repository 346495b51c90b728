"""host/prefetch.py: the links a child read while the file was loaded are the links a dump
gives, taken once; anything amiss leaves the read to the parent; the child never outlives its
use; and the CLI takes the state lock before the child reads anything."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvmnet.host import netlink, prefetch, rtnl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean():
    yield
    prefetch._drop()


def _stable(links: list[dict]) -> list:
    return sorted((l["index"], l["name"], l["master"], l["kind"]) for l in links)


def test_the_prefetched_links_are_a_dump_taken_once():
    prefetch.start_links()
    prefetch.start_links()  # (one child at a time)
    taken = prefetch.take_links()
    assert taken is not None and _stable(taken) == _stable(rtnl.dump_links())
    assert prefetch.take_links() is None  # the next read dumps again


def test_read_links_takes_the_prefetch_and_then_dumps_again(monkeypatch):
    prefetch.start_links()
    dumps = []
    real = rtnl.dump_links
    monkeypatch.setattr(rtnl, "dump_links", lambda: dumps.append(1) or real())
    first, second = netlink.read_links(), netlink.read_links()
    assert first.keys() == second.keys() and dumps == [1]  # the first from the child, the second a dump


def test_a_child_that_fails_leaves_the_read_to_the_parent(monkeypatch):
    def broken():
        raise OSError("no netlink here")
    monkeypatch.setattr(rtnl, "dump_links", broken)  # (the forked child inherits it)
    prefetch.start_links()
    assert prefetch.take_links() is None


def test_a_prefetch_nobody_took_ends_with_its_block():
    with prefetch.links_while(True):
        pid = prefetch._pending["job"].pid
    assert prefetch._pending == {} and not os.path.exists(f"/proc/{pid}")  # (killed and reaped)
    with prefetch.links_while(False):
        assert prefetch._pending == {}


def test_a_prefetch_nobody_takes_ends_with_the_process():
    code = "from kvmnet.host import prefetch; prefetch.start_links(); print(prefetch._pending['job'].pid, flush=True)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30)
    pid = int(out.stdout)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{pid}")


def test_apply_holds_the_lock_before_the_links_are_read(monkeypatch, tmp_path):
    from kvmnet import cli_common
    from kvmnet.engine import statedir

    seen = []

    class Lock:
        def __init__(self, root, shared=False):
            self.shared = shared

        def __enter__(self):
            seen.append("lock")

        def __exit__(self, *exc):
            seen.append("unlock")

    monkeypatch.setattr(statedir, "locked", Lock)
    monkeypatch.setattr(prefetch, "start_links", lambda: seen.append("prefetch"))
    monkeypatch.setattr(prefetch, "_drop", lambda: seen.append("drop"))
    run = lambda **kw: cli_common.locked(str(kw.pop("root", tmp_path)), "x.toml", lambda topo: seen.append("work"),  # noqa: E731
                                         load=lambda f, r: seen.append("load"), **kw)
    run(links=True)
    assert seen == ["lock", "prefetch", "load", "work", "drop", "unlock"]  # none outlives the lock
    for kw in ({}, {"shared": True}, {"links": True, "root": tmp_path / "fresh"}):
        seen.clear()
        run(**kw)  # the other verbs, and apply where no state dir exists yet: the file first, as ever
        assert seen == ["load", "lock", "work", "unlock"], kw
