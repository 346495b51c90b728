"""kvmnet's first netlink change imports pyroute2's IPRoute without the package's __init__ (which
imports every module pyroute2 has), and still works; a process that imported pyroute2 itself
keeps the real package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a change the kernel refuses (no such link): the request goes through pyroute2 for real
FIRST_CHANGE = """
import errno, sys
from kvmnet.host import netlink_pyroute2
from kvmnet.host.netlink_error import NetlinkError
try:
    netlink_pyroute2.request("del link", "link", "del", index=2**31 - 7)
except NetlinkError as exc:
    print("refused", exc.errno in (errno.ENODEV, errno.EPERM), exc.op)
print(type(netlink_pyroute2._ipr).__module__)
print(sorted(m for m in ("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.conntrack", "pyroute2.nslink.nspopen")
             if m in sys.modules))
"""


def _run(code: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_first_change_loads_ipr_without_pyroute2s_package_init():
    refused, module, heavy = _run(FIRST_CHANGE)
    assert refused == "refused True del link"
    assert module == "pyroute2.iproute.linux"
    assert heavy == "[]"


def test_a_process_that_imported_pyroute2_keeps_the_real_package():
    refused, _, heavy = _run("import pyroute2\n" + FIRST_CHANGE)
    assert refused == "refused True del link" and "pyroute2.ndb" in heavy
