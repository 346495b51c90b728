"""pyroute2 on the other core: a child process, forked as a changing command starts, that imports
pyroute2 and opens its socket while the parent imports the rest of kvmnet, reads the file,
observes and plans. Importing pyroute2 (asyncio, and its unittest-based mock among others) is
~50 ms of a ~150 ms cold apply on the project's 2-core VM; run alongside, it leaves the critical
path. Every change is still one pyroute2 IPRoute request, made by the child on the parent's
behalf, one at a time: the parent sends (op, what, command, fields) and waits for the answer.

Frames are a 4-byte length and a `marshal` dump (plain values only) over two private pipes.
The child serves until its request pipe closes, so it ends with the parent, however the parent
ends (kill -9 included: a request in flight completes, as one sent to the kernel would). Its
stdin/stdout/stderr are /dev/null: a caller reading the parent's output sees EOF when the parent
exits. A worker that fails (died, or a value marshal cannot carry) is dropped, and requests go
in-process again; the failed request is reported as an error (EIO), for the transaction to undo.
"""

from __future__ import annotations

import errno
import marshal
import os
import struct

from .netlink_error import NetlinkError

_LEN = struct.Struct("=I")
_child: tuple[int, int, int] | None = None  # (pid, request fd, answer fd) in the parent


def start() -> None:
    """Fork the worker (once per process). Call it before anything else is open or threaded."""
    global _child
    if _child is not None:
        return
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(req_w)
            os.close(ans_r)
            _serve(req_r, ans_w)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(req_r)
    os.close(ans_w)
    _child = (pid, req_w, ans_r)
    import atexit

    atexit.register(stop)


def running() -> bool:
    return _child is not None


def stop() -> None:
    """End the worker: it is idle between requests, so a kill loses nothing; reaped here."""
    global _child
    if _child is None:
        return
    pid, req_w, ans_r = _child
    _child = None
    for fd in (req_w, ans_r):
        os.close(fd)
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except OSError:
        pass


def request(op: str, what: str, command: str, fields: dict) -> None:
    """One change through the worker; its refusal is a NetlinkError with the kernel's errno."""
    try:
        frame = marshal.dumps((op, what, command, fields))
    except ValueError:  # not a plain value: the caller makes it in-process
        stop()
        raise Unsendable from None
    pid, req_w, ans_r = _child
    try:
        _send(req_w, frame)
        code, detail = marshal.loads(_receive(ans_r))
    except (OSError, EOFError, ValueError, TypeError):
        stop()
        raise NetlinkError(errno.EIO, f"{op}: kvmnet's netlink worker ended") from None
    if code > 0:
        raise NetlinkError(code, op)
    if code < 0:
        raise NetlinkError(errno.EIO, f"{op}: {detail}")


class Unsendable(Exception):
    """The request holds a value marshal cannot carry."""


def _serve(req_r: int, ans_w: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    from . import netlink_pyroute2

    netlink_pyroute2.warm()
    while True:
        try:
            frame = _receive(req_r)
        except EOFError:
            return  # the parent is done (or gone)
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
