"""The VXLAN flooding entries' executor against the kernel: a step whose goal already holds
succeeds (an entry deleted by hand, or a run killed after its step and before its record write,
must not make every later apply fail), and one whose goal cannot hold still fails."""

from __future__ import annotations

import json
import os
import sys

import pytest

from helpers.netns import ROOT, Netns

pytestmark = pytest.mark.root
STEP = """
import sys
from kvmnet.errors import HostError
from kvmnet.host import vxlan
try:
    vxlan.fdb({"dev": sys.argv[1], "dst": sys.argv[2]}, sys.argv[3] == "add")
    print("ok")
except HostError as exc:
    print("HostError", exc)
"""


@pytest.fixture
def ns():
    ns = Netns("kn-fdb")
    try:
        ns.sh("ip link add kvx42 type vxlan id 42 local 10.1.0.1 dstport 4789 nolearning")
        yield ns
    finally:
        ns.delete()


def _step(ns: Netns, dev: str, dst: str, op: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ns.run(sys.executable, "-c", STEP, dev, dst, op, env=env).stdout.strip()


def _flooded(ns: Netns) -> list[str]:
    entries = json.loads(ns.run("bridge", "-j", "fdb", "show", "dev", "kvx42").stdout or "[]")
    return sorted(e["dst"] for e in entries if e.get("mac") == "00:00:00:00:00:00")


def test_flooding_steps_whose_goal_holds_succeed_and_others_fail(ns):
    assert _step(ns, "kvx42", "10.1.0.2", "add") == "ok"
    assert _step(ns, "kvx42", "10.1.0.2", "add") == "ok"  # there already
    assert _flooded(ns) == ["10.1.0.2"]
    assert _step(ns, "kvx42", "10.1.0.2", "del") == "ok"
    assert _step(ns, "kvx42", "10.1.0.2", "del") == "ok"  # gone already (the kernel says ENOENT)
    assert _step(ns, "kvx42", "10.1.0.3", "del") == "ok"  # never there
    assert _flooded(ns) == []
    assert _step(ns, "kvx-gone", "10.1.0.2", "del") == "ok"  # its device is gone: nothing floods
    out = _step(ns, "kvx-gone", "10.1.0.2", "add")
    assert out.startswith("HostError bridge fdb append") and "Cannot find device" in out
