"""A child forked for one job on the other core (host/prefetch.py). It runs one function and
leaves with os._exit, 0 if the function returned and 1 if not: it never runs the parent's exit
handlers (which stop the netlink worker, free nft contexts), never takes a signal meant for the
parent (blocked across the fork, and left blocked: the parent ends it with SIGKILL), never
finalizes the parent's garbage (its collector is off), and holds none of the parent's
descriptors but those it is given (its stdio is /dev/null: whoever reads the parent's output
sees its end when the parent ends)."""

from __future__ import annotations

import fcntl
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


class Job:
    """A child that makes bytes on the other core while this process goes on: `Job(make)` forks
    it (`pid` None if it could not), `result()` is every byte make() returned once the child has
    ended well (None otherwise), `cancel()` ends it unheard. Either reaps it; the pipe may stay
    full meanwhile (the child then waits in its write).
    Fork early: after a fork every page this process writes is copied, and with reference counts
    that is nearly every page it touches. Forked from an apply's ~60 MB heap after the file was
    read, a child encoding the topology cache (~25 ms) cost the parent more than it saved."""

    def __init__(self, make):
        self.pid = self.fd = None
        try:
            r, w = os.pipe()
        except OSError:
            return
        try:  # room for a few MB: the child writes all and ends without waiting for the reader
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4 << 20)
        except OSError:
            pass
        self.pid = fork(lambda: _write_all(w, make()), keep=(w,))
        os.close(w)
        if self.pid is None:
            os.close(r)
        else:
            self.fd = r

    def result(self) -> bytes | None:
        if self.pid is None:
            return None
        chunks = []
        try:
            while chunk := os.read(self.fd, 1 << 20):
                chunks.append(chunk)
        except OSError:
            chunks = []
        except BaseException:  # (Ctrl-C while reading: the child ends now, not at exit)
            self.cancel()
            raise
        status = self._end()
        return b"".join(chunks) if status == 0 and chunks else None

    def cancel(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # (blocks nothing: its signals are blocked)
            except OSError:
                pass
            self._end()

    def _end(self) -> int:
        os.close(self.fd)  # (a child still writing gets EPIPE)
        pid, self.pid = self.pid, None
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
