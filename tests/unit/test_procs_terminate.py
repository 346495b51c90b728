"""procs.terminate: SIGTERM, SIGKILL after the grace period, and back only once the process has
exited; through a pidfd, or by /proc on a kernel without pidfds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kvmnet.host import procs

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def _no_pidfd(monkeypatch):
    def refuse(pid, flags=0):
        raise OSError(38, "Function not implemented")
    monkeypatch.setattr(os, "pidfd_open", refuse)


@pytest.fixture(params=["pidfd", "proc"])
def way(request, monkeypatch):
    if request.param == "proc":
        _no_pidfd(monkeypatch)
    return request.param


def _exited(proc: subprocess.Popen) -> bool:
    return procs.exited(proc.pid, None) or procs._stat(proc.pid)[0] == "Z"


def test_a_process_that_stops_on_sigterm_is_gone_when_terminate_returns(way):
    proc = subprocess.Popen(["sleep", "60"])
    procs.terminate(proc.pid)
    assert _exited(proc)
    assert proc.wait(timeout=1) == -signal.SIGTERM


def test_one_that_ignores_sigterm_is_killed_after_the_grace_period(way):
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    t0 = time.monotonic()
    procs.terminate(proc.pid, grace=0.3)
    assert time.monotonic() - t0 >= 0.29
    assert _exited(proc)
    assert proc.wait(timeout=1) == -signal.SIGKILL
    proc.stdout.close()


def test_a_pid_that_is_gone_is_left_alone(way):
    proc = subprocess.Popen(["true"])
    proc.wait()
    procs.terminate(proc.pid)  # reaped: no such process, nothing to signal
