"""Where state lives, and the lock that serializes kvmnet processes sharing it."""

from __future__ import annotations

import fcntl
import os

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
    named network namespace, so that a lab's state never mixes with the host's)."""
    if explicit:
        return explicit
    if os.environ.get("KVMNET_STATE_DIR"):
        return os.environ["KVMNET_STATE_DIR"]
    ns = _netns_name()
    return os.path.join(DEFAULT_STATE_DIR, "netns", ns) if ns else DEFAULT_STATE_DIR


def topologies(state_root: str) -> list[str]:
    """Names of the per-topology directories under the state dir (sorted; none if it is missing)."""
    try:
        return sorted(n for n in os.listdir(state_root) if os.path.isdir(os.path.join(state_root, n)))
    except FileNotFoundError:
        return []


class locked:
    """`with locked(dir):` holds an exclusive flock on <state-dir>/lock; a second kvmnet waits
    there for the first. `shared=True` (QEMU's hooks): a shared lock when the lock file exists,
    none when it does not (nothing created). (A class, not contextlib: this module is on QEMU's
    hook path.)"""

    def __init__(self, state_root: str, shared: bool = False):
        self.state_root, self.shared, self.fd = state_root, shared, None

    def __enter__(self):
        path = os.path.join(self.state_root, "lock")
        if self.shared:
            try:
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return self  # no writer ever ran here
        else:
            os.makedirs(self.state_root, mode=0o700, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)
