"""How kvmnet knows a process is its own daemon (dnsmasq, passt, vde_switch, FRR): the program,
the marker argument (a --conf-file path anyone can read in `ps`), and a user only root could have
started it as. A login user's copy run with the marker is not kvmnet's."""

import os
import subprocess
import sys

import pytest

from kvmnet.host import procs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts a process as another user")
MARKER = "--conf-file=/run/kvmnet/t/dnsmasq-kvmnet-test.conf"


def _started(**kw) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", MARKER], **kw)
    procs.wait_until(lambda: MARKER.encode() in open(f"/proc/{proc.pid}/cmdline", "rb").read())
    return proc


@needs_root
@pytest.mark.parametrize("user,ours", [(None, True), (65534, True), (1000, False), (60000, False)])
def test_a_process_with_the_marker_is_ours_only_as_root_a_system_user_or_nobody(user, ours):
    proc = _started(**({"user": user, "group": user} if user is not None else {}))
    try:
        assert procs.is_ours(proc.pid, sys.executable, MARKER) is ours
        assert (proc.pid in procs.find(sys.executable, MARKER)) is ours
    finally:
        proc.kill()
        proc.wait()


def test_another_marker_or_program_is_not_ours():
    proc = _started()
    try:
        assert not procs.is_ours(proc.pid, sys.executable, MARKER + "x")
        assert not procs.is_ours(proc.pid, "/bin/sh", MARKER)
    finally:
        proc.kill()
        proc.wait()
