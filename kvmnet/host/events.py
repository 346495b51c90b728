"""What `kvmnet watch` waits on, as file descriptors for one poll(): rtnetlink multicast groups
(links, IPv4 addresses and routes), `nft monitor` (ruleset changes), pidfds of dnsmasq
processes (their exit), firewalld's D-Bus signals (`dbus-monitor`, when a system bus exists),
and a self-pipe that signal handlers write to. No decisions here: each source turns what it
reads into plain event tuples, and engine/watch.py decides what they mean.

Events: ("link", name, index), ("addr", index), ("route", index), ("overflow",) when the kernel
dropped notifications (treat as "anything may have changed"), ("nft", line), ("exit", pid),
("firewalld", what), ("signal", signum).
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import socket
import struct
import subprocess

from . import procs, rtnl
from .firewalld import FIREWALLD, system_bus_exists

_RTMGRP_LINK, _RTMGRP_IPV4_IFADDR, _RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
_RTM_NEWLINK, _RTM_DELLINK, _RTM_NEWADDR, _RTM_DELADDR, _RTM_NEWROUTE, _RTM_DELROUTE = 16, 17, 20, 21, 24, 25


def parse_notifications(data: bytes) -> list[tuple]:
    """The events in one buffer of rtnetlink notifications (pure; tests feed it bytes)."""
    out, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        if length < 16:
            break
        payload = data[offset + 16:offset + length]
        offset += (length + 3) & ~3
        try:
            if kind in (_RTM_NEWLINK, _RTM_DELLINK):
                link = rtnl.parse_link(payload)
                out.append(("link", link["name"], link["index"]))
            elif kind in (_RTM_NEWADDR, _RTM_DELADDR):
                out.append(("addr", struct.unpack_from("BBBBI", payload)[4]))
            elif kind in (_RTM_NEWROUTE, _RTM_DELROUTE):
                out.append(("route", rtnl.parse_route(payload)["oif"]))
        except (struct.error, KeyError, ValueError, UnicodeDecodeError):
            out.append(("overflow",))  # a message we cannot read: assume anything changed
    return out


class _Rtnl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV4_ROUTE))

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[tuple]:
        out = []
        while True:
            try:
                out += parse_notifications(self.sock.recv(1 << 20))
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped notifications
                    out.append(("overflow",))
                    continue
                raise

    def close(self) -> None:
        self.sock.close()


def _die_with_parent() -> None:
    """In the child: SIGTERM when watch dies, even by SIGKILL (no orphaned monitors)."""
    procs.die_with_parent(signal.SIGTERM)


class _Child:
    """A monitor process whose stdout lines are events (`nft monitor`, `dbus-monitor`)."""

    def __init__(self, argv: list[str], kind: str, keep=lambda line: True, env: dict | None = None):
        self.kind, self.keep, self.buf = kind, keep, b""
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent, env=env)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def read(self) -> list[tuple]:
        try:
            chunk = os.read(self.fileno(), 1 << 16)
        except BlockingIOError:
            return []
        if not chunk:  # the monitor exited: say so (watch then works without it)
            return [("gone", self.kind)]
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [(self.kind, text) for line in lines if (text := line.decode(errors="replace").strip()) and self.keep(text)]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(0.5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def _firewalld_line(line: str) -> bool:
    # dbus-monitor prints a header line per message, then its arguments: the header is the event
    return line.startswith("signal ") and ("member=Reloaded" in line or "member=NameOwnerChanged" in line)


def _firewalld_monitor() -> _Child | None:
    if not system_bus_exists() or not shutil.which("dbus-monitor"):
        return None
    rules = [f"type='signal',interface='{FIREWALLD}',member='Reloaded'",
             f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{FIREWALLD}'"]
    try:
        return _Child(["dbus-monitor", "--system", *rules], "firewalld", _firewalld_line)
    except OSError:
        return None


class Sources:
    """Every event source, polled together. `wait(timeout)` returns the events that arrived (an
    empty list when the timeout passed first)."""

    def __init__(self, nft: bool = True, firewalld: bool = True):
        self.rtnl = _Rtnl()
        self.children = []
        if nft and shutil.which("nft"):
            self.children.append(_Child(["nft", "monitor"], "nft"))
        fw = _firewalld_monitor() if firewalld else None
        if fw is not None:
            self.children.append(fw)
        self.pidfds: dict[int, int] = {}  # pid -> pidfd
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.poll = select.poll()
        for src in [self.rtnl, *self.children]:
            self.poll.register(src.fileno(), select.POLLIN)
        self.poll.register(self.wake_r, select.POLLIN)

    def catch(self, *signums: int) -> None:
        """Signals become ("signal", n) events (the handler only wakes the poll)."""
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for signum in signums:
            signal.signal(signum, lambda *_: None)

    def watch_pids(self, pids: set[int]) -> None:
        """Watch exactly these pids for exit (pidfds: no polling of /proc)."""
        for pid in set(self.pidfds) - pids:
            self.poll.unregister(self.pidfds[pid])
            os.close(self.pidfds.pop(pid))
        for pid in pids - set(self.pidfds):
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue  # already gone: the next plan sees that
            self.pidfds[pid] = fd
            self.poll.register(fd, select.POLLIN)

    def wait(self, timeout: float | None) -> list[tuple]:
        ready = self.poll.poll(None if timeout is None else max(0, int(timeout * 1000)))
        by_fd = {src.fileno(): src for src in [self.rtnl, *self.children]}
        pid_of = {fd: pid for pid, fd in self.pidfds.items()}
        out = []
        for fd, _ in ready:
            if fd == self.wake_r:
                out += [("signal", n) for n in _drain(self.wake_r)]
            elif fd in pid_of:
                out.append(("exit", pid_of[fd]))
                self.watch_pids(set(self.pidfds) - {pid_of[fd]})
            elif fd in by_fd:
                out += self._read(by_fd[fd])
        return out

    def _read(self, src) -> list[tuple]:
        events = src.read()
        if ("gone", getattr(src, "kind", None)) in events:
            self.poll.unregister(src.fileno())
            self.children.remove(src)
            src.close()
        return events

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self.watch_pids(set())
        for child in self.children:
            child.close()
        self.rtnl.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def _drain(fd: int) -> list[int]:
    try:
        return list(os.read(fd, 512))
    except BlockingIOError:
        return []
