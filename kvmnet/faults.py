"""Test-only fault points, driven by the environment (the reliability suite uses them).

KVMNET_FAULT_AT=N  fail before running step N (0-based) of an apply, to exercise rollback.
KVMNET_CRASH_AT=N  SIGKILL this process before step N, to exercise crash recovery.
"""

from __future__ import annotations

import os
import signal

from .errors import HostError


def check(index: int) -> None:
    if os.environ.get("KVMNET_CRASH_AT") == str(index):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("KVMNET_FAULT_AT") == str(index):
        raise HostError(f"injected fault before step {index} (KVMNET_FAULT_AT)")
