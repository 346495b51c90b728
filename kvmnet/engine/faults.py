"""Test-only fault points, driven by the environment (the reliability suite uses them).

KVMNET_FAULT_AT=N  fail before running step N (0-based) of an apply, to exercise rollback.
KVMNET_CRASH_AT=P  SIGKILL this process at point P, to exercise crash recovery: "N" before
                   apply step N, "N+" right after it ran, "dN" before destroy step N.
"""

from __future__ import annotations

import os
import signal

from ..errors import HostError


def check(point: int | str) -> None:
    if os.environ.get("KVMNET_CRASH_AT") == str(point):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("KVMNET_FAULT_AT") == str(point):
        raise HostError(f"injected fault before step {point} (KVMNET_FAULT_AT)")
