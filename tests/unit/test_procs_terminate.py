"""procs.terminate: SIGTERM, SIGKILL after the grace period, and back only once the process has
exited; through a pidfd, or by /proc on a kernel without pidfds."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from kvmnet.host import procs

REAL_POLL = select.poll
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


class SlowToDie:
    """select.poll whose first `quiet` polls see nothing (a process in uninterruptible sleep
    past its grace period): terminate must keep killing and waiting, not return."""

    def __init__(self, quiet: int):
        self.quiet, self.polls, self.real = quiet, 0, REAL_POLL()

    def register(self, fd, mask):
        self.real.register(fd, mask)

    def poll(self, timeout):
        self.polls += 1
        return [] if self.polls <= self.quiet else self.real.poll(None)


def test_terminate_waits_past_the_grace_period_until_the_process_is_gone(monkeypatch):
    proc = subprocess.Popen(["sleep", "60"])
    slow, sent, real_send = SlowToDie(quiet=3), [], signal.pidfd_send_signal
    monkeypatch.setattr(select, "poll", lambda: slow)
    monkeypatch.setattr(signal, "pidfd_send_signal", lambda fd, sig: (sent.append(sig), real_send(fd, sig))[1])
    procs.terminate(proc.pid, grace=0.01)
    assert slow.polls == 4 and sent == [signal.SIGTERM, signal.SIGKILL, signal.SIGKILL, signal.SIGKILL]
    assert _exited(proc)
    proc.wait(timeout=1)
