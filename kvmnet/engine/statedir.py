"""Where state lives, the lock that serializes kvmnet processes sharing it, and trusted reads
from it (host/files.py: owned by root or this user, writable by nobody else, no symlinks)."""

from __future__ import annotations

import fcntl
import os
import stat

from ..host import files
from ..host.files import StateUnreadable, UnsafeState  # noqa: F401  (re-exported for callers)

DEFAULT_STATE_DIR = "/run/kvmnet"


def _netns_name() -> str | None:
    """The name `ip netns` knows this process's network namespace by, if it has one."""
    try:
        mine = os.stat("/proc/self/ns/net")
        for name in sorted(os.listdir("/run/netns")):
            st = os.stat(os.path.join("/run/netns", name))
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return name
    except OSError:
        pass
    return None


def resolve(explicit: str | None) -> str:
    """--state-dir, else $KVMNET_STATE_DIR, else /run/kvmnet (or /run/kvmnet/netns/NAME inside a
    named network namespace, so that a lab's state never mixes with the host's). Absolute, so
    that paths recorded in it hold from any working directory (QEMU runs hooks from /)."""
    if explicit:
        return os.path.abspath(explicit)
    if os.environ.get("KVMNET_STATE_DIR"):
        return os.path.abspath(os.environ["KVMNET_STATE_DIR"])
    ns = _netns_name()
    return os.path.join(DEFAULT_STATE_DIR, "netns", ns) if ns else DEFAULT_STATE_DIR


TRY_SUFFIX = ".try.json"  # <state-dir>/<topology>.try.json: a `kvmnet try` awaiting confirm (engine/trial.py)


def topology_cache(state_root: str, path: str) -> str:
    """Where engine/topocache.py keeps the last validated topology of the file at `path`."""
    import hashlib

    return os.path.join(state_root, "topology-" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:32] + ".json")


def topologies(state_root: str) -> list[str]:
    """Names of the per-topology directories under the state dir (sorted; none if it is missing).
    The state dir and each of them must be trusted (UnsafeState otherwise)."""
    root_fd = files.open_dir(state_root)
    if root_fd is None:
        return []
    try:
        try:
            names = os.listdir(root_fd)
        except PermissionError as exc:
            raise files.unreadable(state_root, exc) from None
        out = []
        for name in sorted(names):
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):  # the lock, or not a topology
                files.check_private(st, os.path.join(state_root, name), "file")
                continue
            files.check_private(st, os.path.join(state_root, name), "dir")
            out.append(name)
        return out
    finally:
        os.close(root_fd)


def read(state_root: str, topology: str, name: str) -> str | None:
    """The text of <state-dir>/<topology>/<name>, trusted (None if missing)."""
    return files.read_private(os.path.join(state_root, topology, name))


class locked:
    """`with locked(dir):` holds an exclusive flock on <state-dir>/lock; a second kvmnet waits
    there for the first. `shared=True` is for verbs that write nothing: a shared lock when the
    lock file exists, none when the state dir is missing (nothing created: read-only means it).
    (A class, not contextlib: this module is on QEMU's hook path.)"""

    def __init__(self, state_root: str, shared: bool = False):
        self.state_root, self.shared, self.fd = state_root, shared, None

    def __enter__(self):
        root_fd = files.open_dir(self.state_root, create=not self.shared)
        if root_fd is None:
            return self
        try:
            self.fd = self._open_lock(root_fd)
        finally:
            os.close(root_fd)
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def _open_lock(self, root_fd: int) -> int | None:
        path = os.path.join(self.state_root, "lock")
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDONLY if self.shared else os.O_RDWR | os.O_CREAT)
        try:
            fd = os.open("lock", flags, 0o600, dir_fd=root_fd)
        except FileNotFoundError:
            return None  # shared, and no writer ever ran here
        except PermissionError as exc:
            raise files.unreadable(path, exc) from None
        except OSError as exc:
            if exc.errno == 40:
                raise files.UnsafeState(f"{path}: a symlink; refusing to use the state dir") from None
            raise
        try:
            files.check_private(os.fstat(fd), path, "file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)
