"""pyroute2 on the other core: a child process, forked as a changing command starts, that imports
pyroute2 and opens its socket while the parent imports the rest of kvmnet, reads the file,
observes and plans. Importing pyroute2 (asyncio, and its unittest-based mock among others) is
~50 ms of a ~150 ms cold apply on the project's 2-core VM; run alongside, it leaves the critical
path. Every change is still one pyroute2 IPRoute request, made by the child on the parent's
behalf, one at a time: the parent sends (op, what, command, fields) and waits for the answer.

Frames are a 4-byte length and a `marshal` dump (plain values only) over two private pipes. The
child says "ready" once pyroute2 is loaded; the parent sends nothing before that, so no request
waits in a pipe. The child dies with its parent (PR_SET_PDEATHSIG, SIGKILL), however the parent
ends, and never makes a request after it: a request in flight completes or not, as one sent to
the kernel would (the transaction's write-ahead record covers it either way). Its
stdin/stdout/stderr are /dev/null: a caller reading the parent's output sees EOF when the parent
exits. A request that never reached the worker (it failed to start, died while idle, or the
request holds a value marshal cannot carry) is made in-process; a worker lost during a request
is that request's error (EIO), for the transaction to undo in-process. Interrupted while waiting
(Ctrl-C), the parent stops the worker: its answer must never be read as the next request's.
"""

from __future__ import annotations

import errno
import fcntl
import marshal
import os
import struct

from .netlink_error import NetlinkError

_LEN = struct.Struct("=I")
_child: dict | None = None  # in the parent: pid, the request and answer fds, whether it said ready


def start() -> None:
    """Fork the worker (once per process). Call it before anything else is open or threaded."""
    global _child
    if _child is not None:
        return
    parent = os.getpid()
    req_r, req_w, ans_r, ans_w = (_above_stdio(fd) for fd in (*os.pipe(), *os.pipe()))
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(req_w)
            os.close(ans_r)
            _serve(parent, req_r, ans_w)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(req_r)
    os.close(ans_w)
    _child = {"pid": pid, "req": req_w, "ans": ans_r, "ready": False}
    import atexit

    atexit.register(stop)


def _above_stdio(fd: int) -> int:
    """The pipe end as a close-on-exec descriptor above 2: with stdin or stdout closed, os.pipe()
    may return 0 or 1, which the child's /dev/null (and the parent's own output) would take."""
    if fd > 2:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return high


def running() -> bool:
    return _child is not None


def stop() -> None:
    """End the worker (idle between requests, or its request abandoned) and reap it."""
    global _child
    if _child is None:
        return
    child, _child = _child, None
    for fd in (child["req"], child["ans"]):
        os.close(fd)
    try:
        os.kill(child["pid"], 9)
        os.waitpid(child["pid"], 0)
    except OSError:
        pass


def request(op: str, what: str, command: str, fields: dict) -> bool:
    """One change through the worker: True once made; False if it never reached the worker (the
    caller makes it in-process). The kernel's refusal is a NetlinkError with its errno."""
    try:
        frame = marshal.dumps((op, what, command, fields))
    except ValueError:  # not a plain value
        stop()
        return False
    try:
        if not _delivered(frame):
            stop()
            return False
        code, detail = marshal.loads(_receive(_child["ans"]))
    except (OSError, EOFError, ValueError, TypeError):
        stop()
        raise NetlinkError(errno.EIO, f"{op}: kvmnet's netlink worker ended") from None
    except BaseException:
        stop()
        raise
    if code > 0:
        raise NetlinkError(code, op)
    if code < 0:
        raise NetlinkError(errno.EIO, f"{op}: {detail}")
    return True


def _delivered(frame: bytes) -> bool:
    """Send `frame` once the worker is ready; False if it is gone before having it."""
    try:
        if not _child["ready"]:
            _receive(_child["ans"])  # its "ready"
            _child["ready"] = True
        _send(_child["req"], frame)
    except (OSError, EOFError):
        return False
    return True


class _spare_cpu:
    """Import at the lowest priority: on a 2-core host the parent and its link prefetch may want
    both cores (a small change to a big topology measured ~20 ms slower with the import competing),
    and when nothing else runs, the import has a core to itself anyway. Requests are then served
    at the priority the worker was started with (root may raise it back)."""

    def __enter__(self):
        self.was = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, 19)

    def __exit__(self, *exc) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.was)
        except OSError:
            pass  # (not root: it stays low, and requests come one at a time while the parent waits)


def _serve(parent: int, req_r: int, ans_w: int) -> None:
    import signal

    from . import procs

    procs.die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:  # it died before that took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    with _spare_cpu():
        from . import netlink_pyroute2

        netlink_pyroute2.warm()
    _send(ans_w, marshal.dumps((0, "ready")))
    while True:
        try:
            frame = _receive(req_r)
        except EOFError:
            return  # the parent is done
        op, what, command, fields = marshal.loads(frame)
        try:
            netlink_pyroute2.request(op, what, command, **fields)
            answer = (0, "")
        except NetlinkError as exc:
            answer = (exc.errno or errno.EIO, "")
        except Exception as exc:  # pyroute2 refused the request itself: the parent reports it
            answer = (-1, f"{type(exc).__name__}: {exc}")
        _send(ans_w, marshal.dumps(answer))


def _send(fd: int, frame: bytes) -> None:
    data = _LEN.pack(len(frame)) + frame
    while data:
        data = data[os.write(fd, data):]


def _receive(fd: int) -> bytes:
    size = _LEN.unpack(_read_exactly(fd, _LEN.size))[0]
    return _read_exactly(fd, size)


def _read_exactly(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
