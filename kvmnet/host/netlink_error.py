"""The one error of the netlink seam, whichever client did the work (rtnl or pyroute2).

An OSError, so `except OSError` and `.errno` / `.strerror` keep working (QEMU's hook relies on
them); `op` says what was asked ("add route 10.1.0.0/24 dev br0"). Stdlib only: the hook's fast
path imports it.
"""

from __future__ import annotations

import os


class NetlinkError(OSError):
    """A netlink request (or the tap ioctl) failed; errno is positive, as in errno.h."""

    def __init__(self, code: int, op: str):
        super().__init__(code, os.strerror(code))
        self.op = op

    def __str__(self) -> str:
        return f"{self.op}: {self.strerror}"
