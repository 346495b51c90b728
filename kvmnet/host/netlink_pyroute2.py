"""The pyroute2 half of kvmnet's netlink seam: the changes kvmnet.host.netlink does not hand to
rtnl. One IPRoute socket per process, opened at the first change: importing pyroute2 costs
110-230 ms, which reads, plans and QEMU's hook never pay. pyroute2's errors (its NetlinkError,
errno in .code) leave this module as kvmnet's NetlinkError (.errno, .op), like rtnl's.
"""

from __future__ import annotations

import errno

from .netlink_error import NetlinkError

_ipr = None


def _open():
    global _ipr
    from pyroute2 import IPRoute

    _ipr = IPRoute()
    return _ipr


def request(op: str, what: str, command: str, **fields) -> None:
    """IPRoute.<what>(command, **fields), e.g. ("add bridge br0", "link", "add", ifname="br0")."""
    try:
        getattr(_ipr or _open(), what)(command, **fields)
    except OSError as exc:  # the socket itself failed
        raise NetlinkError(exc.errno or errno.EIO, op) from None
    except Exception as exc:
        from pyroute2.netlink.exceptions import NetlinkError as Refused  # imported by _open already

        if not isinstance(exc, Refused) or not exc.code:
            raise
        raise NetlinkError(exc.code, op) from None
