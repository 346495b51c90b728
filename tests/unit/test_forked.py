"""host/forked.py: a job's child leaves with 0 or 1, holds only the descriptors it is given,
takes none of the parent's signals or exit handlers, and the parent's signal mask is as before."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from kvmnet.host import forked

ROOT = Path(__file__).resolve().parents[2]


def _status(job) -> int:
    pid = forked.fork(job)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_job_that_returns_leaves_0_and_one_that_raises_1():
    assert _status(lambda: None) == 0
    assert _status(lambda: 1 / 0) == 1


def test_the_child_holds_only_what_it_is_given_and_blocks_the_parents_signals():
    r, w = os.pipe()
    other_r, other_w = os.pipe()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])

    def job():
        fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        out = {"fds": fds, "stdout": os.readlink("/proc/self/fd/1"),
               "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))}
        os.write(w, json.dumps(out).encode())

    pid = forked.fork(job, keep=(w,))
    os.close(w)
    seen = json.loads(os.read(r, 65536))
    os.waitpid(pid, 0)
    assert w in seen["fds"] and other_r not in seen["fds"] and other_w not in seen["fds"]
    assert seen["stdout"] == "/dev/null"
    assert {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)} <= set(seen["blocked"])
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # the parent's mask, unchanged
    for fd in (r, other_r, other_w):
        os.close(fd)


def test_the_parents_exit_handlers_never_run_in_the_child(tmp_path):
    code = ("import atexit, os, sys; from kvmnet.host import forked\n"
            f"atexit.register(lambda: open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close())\n"
            "pid = forked.fork(lambda: None); os.waitpid(pid, 0); print(pid)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30)
    child = out.stdout.strip()
    ran = {p.name for p in tmp_path.iterdir()}
    assert len(ran) == 1 and child not in ran  # the parent's handler ran, in the parent only


def test_a_job_hands_over_what_it_made_and_is_reaped():
    big = bytes(range(256)) * 40000  # ~10 MB: more than the pipe holds, read while it writes
    job = forked.Job(lambda: big)
    pid = job.pid
    assert job.result() == big and job.pid is None
    assert not os.path.exists(f"/proc/{pid}")  # reaped


def test_a_failed_or_cancelled_job_gives_nothing_and_is_reaped():
    assert forked.Job(lambda: 1 / 0).result() is None
    assert forked.Job(lambda: b"").result() is None  # nothing made: as good as a failure
    job = forked.Job(lambda: os.read(os.open("/dev/zero", os.O_RDONLY), 1) and __import__("time").sleep(30))
    pid = job.pid
    job.cancel()
    assert job.pid is None and not os.path.exists(f"/proc/{pid}")
