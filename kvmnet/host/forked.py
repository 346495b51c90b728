"""A child forked for one job on the other core (host/prefetch.py). It runs one function and
leaves with os._exit, 0 if the function returned and 1 if not: it never runs the parent's exit
handlers (which stop the netlink worker, free nft contexts), never takes a signal meant for the
parent (blocked across the fork, and left blocked: the parent ends it with SIGKILL), never
finalizes the parent's garbage (its collector is off), and holds none of the parent's
descriptors but those it is given (its stdio is /dev/null: whoever reads the parent's output
sees its end when the parent ends)."""

from __future__ import annotations

import gc
import os
import signal

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def fork(job, keep: tuple[int, ...] = ()) -> int | None:
    """The child's pid (`job()` runs there), or None if no child could be made."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return None
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return pid
    code = 1
    try:
        gc.disable()
        _only(keep)
        job()
        code = 0
    finally:
        os._exit(code)


def _only(keep: tuple[int, ...]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    for name in os.listdir("/proc/self/fd"):  # (few: no close_range loop over the fd limit)
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed already
