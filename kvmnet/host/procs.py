"""Processes and sockets, read from /proc (listening TCP sockets from sock_diag): who holds a
port, is a pid really our dnsmasq."""

from __future__ import annotations

import os
import select
import signal
import time

from . import sockdiag


def which(name: str) -> str | None:
    """shutil.which(name) for a plain command name, without shutil's imports (bz2, lzma,
    fnmatch: ~3 ms of every apply, which asks for nft and dnsmasq on each run)."""
    search = os.environ.get("PATH")
    if search is None:  # (as shutil: the system's default path; an empty PATH finds nothing)
        search = os.confstr("CS_PATH") or os.defpath
    for directory in search.split(os.pathsep) if search else ():
        path = os.path.join(directory, name)  # ("": the cwd, a relative answer, as shutil gives)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def listening() -> dict[tuple[str, int], set[str]]:
    """(proto, port) -> socket inodes bound in this network namespace (TCP: listening only)."""
    tcp = sockdiag.listening()  # (/proc/net/tcp walks every connection's hash bucket: ~8 ms)
    out: dict[tuple[str, int], set[str]] = {("tcp", port): inodes for port, inodes in (tcp or {}).items()}
    for proto in ("udp",) if tcp is not None else ("tcp", "udp"):
        for family in ("", "6"):
            _read_proc_net(proto, family, out)
    return out


def _read_proc_net(proto: str, family: str, out: dict) -> None:
    try:
        with open(f"/proc/net/{proto}{family}") as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if proto == "tcp" and state != "0A":  # TCP_LISTEN
                    continue
                out.setdefault((proto, int(local.rsplit(":", 1)[1], 16)), set()).add(inode)
    except FileNotFoundError:
        pass


def _listening_inodes(port: int, proto: str) -> set[str]:
    return listening().get((proto, port), set())


def port_holders(port: int, proto: str) -> list[str]:
    """'pid (comm)' of processes with a socket bound to port; ['unknown process'] if hidden."""
    inodes = _listening_inodes(port, proto)
    if not inodes:
        return []
    found = []
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    with open(f"/proc/{pid}/comm") as f:
                        found.append(f"{pid} ({f.read().strip()})")
                    break
        except OSError:
            continue
    return found or ["a process in another namespace or unknown"]


def is_ours(pid: int, exe: str, marker: str) -> bool:
    """True only if pid runs `exe` with `marker` in its command line, as a user only root could
    have started it as: a recycled pid held by another program is never mistaken for ours (we
    never trust a pid file alone), nor is a user's copy run with our marker (the marker, a
    --conf-file path, is in `ps` for all to see)."""
    try:
        if os.path.realpath(f"/proc/{pid}/exe") != os.path.realpath(exe):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read().split(b"\0") and _system_user(pid)
    except OSError:
        return False


def _system_user(pid: int) -> bool:
    """Every uid of the process (real, effective, saved, fs) is root's, a system account's
    (dnsmasq, frr: at most SYS_UID_MAX) or nobody's, which kvmnet's daemons drop to; a login
    user's process never is."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return all(int(u) <= _sys_uid_max() or int(u) == NOBODY for u in line.split()[1:])
    return False


NOBODY = 65534
_SYS_UID_MAX: list = []


def _sys_uid_max() -> int:
    """/etc/login.defs' SYS_UID_MAX (999, Debian's and Fedora's default, when it says none)."""
    if not _SYS_UID_MAX:
        value = 999
        try:
            with open("/etc/login.defs") as f:
                for line in f:
                    words = line.split()
                    if len(words) == 2 and words[0] == "SYS_UID_MAX" and words[1].isdigit():
                        value = int(words[1])
        except OSError:
            pass
        _SYS_UID_MAX.append(value)
    return _SYS_UID_MAX[0]


def find(exe: str, marker: str) -> list[int]:
    """Every process running `exe` with exactly `marker` among its arguments, found by scanning
    /proc: how kvmnet finds its own dnsmasq when the pid file (or the whole state dir) is lost.
    Never by name: a foreign dnsmasq has another --conf-file."""
    wanted = os.path.realpath(exe)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _runs(int(entry), wanted, marker.encode()):
            found.append(int(entry))
    return sorted(found)


def _runs(pid: int, real_exe: str, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if marker not in f.read().split(b"\0"):
                return False  # the cheap test first: most processes stop here
        return os.path.realpath(f"/proc/{pid}/exe") == real_exe and _system_user(pid)
    except OSError:
        return False


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # fields after the command name
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot): with the pid, its identity."""
    fields = _stat(pid)
    return fields[19] if fields else None


def exited(pid: int, started: str | None) -> bool:
    """That process is gone or a zombie (its files, sockets included, are closed by then);
    a pid reused by a newer process counts as gone."""
    fields = _stat(pid)
    return fields is None or fields[0] in ("Z", "X") or fields[19] != started


def wait_until(ready, seconds: float = 5, step: float = 0.01) -> bool:
    """Poll `ready()` until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def terminate(pid: int, grace: float = 3) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; return once it has exited (only then are its
    sockets closed: a restart would otherwise find its port still bound). Through a pidfd, which
    holds this very process: a reused pid is never signalled, and the kernel says when it exits
    (no polling: a destroy stops 16 dnsmasq one after another)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # a kernel without pidfds (before 5.3)
        return _terminate_polling(pid, grace)
    poller = select.poll()
    poller.register(fd, select.POLLIN)  # readable once it has exited (its files closed)
    try:
        sig = signal.SIGTERM
        while True:  # SIGKILL again every `grace` seconds until it is gone, as long as that takes
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                return
            if poller.poll(grace * 1000):
                return
            sig = signal.SIGKILL
    finally:
        os.close(fd)


def _terminate_polling(pid: int, grace: float) -> None:
    """terminate() by /proc: the pid and its start time identify the process."""
    started = start_time(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    while not wait_until(lambda: exited(pid, started), grace, 0.005):
        try:
            os.kill(pid, signal.SIGKILL)  # the same process: exited() checked its start time
        except ProcessLookupError:
            return


def die_with_parent(signum: int) -> None:
    """In a child: the kernel sends it `signum` when its parent dies, even by SIGKILL."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG


def read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
