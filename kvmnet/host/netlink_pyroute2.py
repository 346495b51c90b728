"""The pyroute2 half of kvmnet's netlink seam: the changes kvmnet.host.netlink does not hand to
rtnl. One IPRoute socket per process, opened at the first change: importing pyroute2 costs
110-230 ms, which reads, plans and QEMU's hook never pay (and a command that will change links
pays alongside its other work: netlink_worker.py). pyroute2's errors (its NetlinkError,
errno in .code) leave this module as kvmnet's NetlinkError (.errno, .op), like rtnl's.
"""

from __future__ import annotations

import errno
import sys

from . import netlink_worker
from .netlink_error import NetlinkError

_ipr = None


def warm() -> None:
    """Import pyroute2 and open the socket now (the worker does, before its first request)."""
    if _ipr is None:
        _open()


def _open():
    global _ipr
    _enter_pyroute2_package()
    from pyroute2.iproute.linux import IPRoute

    _ipr = IPRoute()
    return _ipr


def _enter_pyroute2_package() -> None:
    """Make `pyroute2` importable as a package without running its __init__, which imports every
    module pyroute2 has (NDB, IPDB, conntrack, nl80211, wireguard...: about 40% of the import
    time of a cold apply's pyroute2) just to re-export their names. kvmnet needs IPRoute and the
    exception module, whose own imports (`from pyroute2.x import y`) then load only what they
    use. A process that imported pyroute2 itself already has the real package: it is kept."""
    if "pyroute2" in sys.modules:
        return
    import importlib.util

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return  # not a plain package: let the ordinary import run (and fail, or not)
    sys.modules["pyroute2"] = importlib.util.module_from_spec(spec)  # __path__ set, body not run


def request(op: str, what: str, command: str, **fields) -> None:
    """IPRoute.<what>(command, **fields), e.g. ("add bridge br0", "link", "add", ifname="br0");
    made by the netlink worker when one was started for this command (netlink_worker.py)."""
    if netlink_worker.running() and netlink_worker.request(op, what, command, fields):
        return  # else it never reached the worker, which is gone: from here on, in this process
    try:
        getattr(_ipr or _open(), what)(command, **fields)
    except OSError as exc:  # the socket itself failed
        raise NetlinkError(exc.errno or errno.EIO, op) from None
    except Exception as exc:
        from pyroute2.netlink.exceptions import NetlinkError as Refused  # imported by _open already

        if not isinstance(exc, Refused) or not exc.code:
            raise
        raise NetlinkError(exc.code, op) from None
