"""Start and stop a guest NIC's passt (render/passt.py builds its command line).

Started as root, passt drops to user nobody before it binds its socket and writes its pid
file: its own directory is nobody's (0700), and the directories above it must let nobody pass
(0711: search, never list or write). kvmnet's trust rules still hold: nothing in a nobody-owned
directory is trusted. A passt is kvmnet's only if /proc shows it running the passt executable
with exactly its socket argument (as a dnsmasq is by its --conf-file): the pid file only says
which process to check first, and it is read without following links or blocking."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess

from ..errors import HostError, InputError
from ..render.passt import PID, SOCKET
from . import files, procs

PASSER_MODE = 0o711  # others may pass through (reach the socket's directory), not list


def binary() -> str:
    exe = shutil.which("passt")
    if exe is None:
        raise InputError("passt is not installed (apt-get install passt)")
    return exe


def _executables(exe: str) -> list[str]:
    """Debian's passt re-executes passt.avx2 next to it on CPUs with AVX2: either may run."""
    return [exe] + [p for p in (exe + ".avx2",) if os.path.exists(p)]


def running(exe: str, socket: str) -> list[int]:
    """The passt serving `socket`: its pid file's process if /proc confirms it, else a scan."""
    pid = _read_pid(os.path.join(os.path.dirname(socket), PID))
    if pid and any(procs.is_ours(pid, e, socket) for e in _executables(exe)):
        return [pid]
    return sorted(pid for e in _executables(exe) for pid in procs.find(e, socket))


def _read_pid(path: str) -> int | None:
    """A pid from a file in nobody's directory: never through a symlink, never a FIFO or a
    device (a read could block or never end), at most a line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


def _runs_as() -> tuple[int, int]:
    """The user passt ends up as: nobody when started as root, else whoever starts it."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def prepare(state_root: str, topo_dir: str, directory: str) -> None:
    """The NIC's directory, owned by passt's user; the state dir and the topology's directory
    (root's, checked by files.open_dir) only gain others' search bit."""
    for path in (state_root, topo_dir):
        fd = files.open_dir(path, create=True)
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o011 != 0o011:
                os.fchmod(fd, mode | 0o011)
        finally:
            os.close(fd)
    uid, gid = _runs_as()
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        os.mkdir(directory, 0o700)
        os.chown(directory, uid, gid)
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise HostError(f"{directory}: not a directory owned by uid {uid}; remove it and retry")


def start(argv: list[str], socket: str, directory: str) -> int:
    """Start passt (already running: its pid); HostError with passt's own words if it fails."""
    pids = running(argv[0], socket)
    if pids:
        return pids[0]
    _remove_leftovers(directory)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"passt failed to start: {exc}") from None
    pids = running(argv[0], socket)
    if done.returncode != 0 or not pids:
        said = " ".join(line for line in (done.stderr + done.stdout).splitlines()
                        if line.strip() and not line.startswith("Failed to send"))
        raise HostError(f"passt failed to start (exit {done.returncode}): {said or 'no message'}")
    return pids[0]


def stop(exe: str, socket: str, directory: str) -> list[int]:
    """Stop the passt serving `socket` (SIGTERM, then SIGKILL after 3 s); remove its directory."""
    stopped = running(exe, socket)
    for pid in stopped:
        procs.terminate(pid)
    _remove_leftovers(directory)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise HostError(f"{directory}: {exc.strerror}; passt left files behind") from None
    return stopped


def stop_recorded(directory: str) -> None:
    """A recorded passt.stop (destroy): the passt serving DIRECTORY/sock, if any, then its files.
    Without passt installed none can run: its files still go."""
    stop(shutil.which("passt") or "/usr/bin/passt", os.path.join(directory, SOCKET), directory)


def remove_if_empty(state_root: str, topology: str) -> None:
    """The topology's state directory once its last passt is gone, unless something (a record,
    dnsmasq's files) is still in it."""
    files.remove_empty_dir(state_root, topology)


def _remove_leftovers(directory: str) -> None:
    """A killed passt leaves its socket and pid file: unlink them by name (never followed)."""
    for name in (SOCKET, PID):
        try:
            os.unlink(os.path.join(directory, name))
        except (FileNotFoundError, NotADirectoryError):
            pass
