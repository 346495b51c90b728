"""Create a macvtap (a guest NIC of a direct network) or the host's macvlan on an uplink,
through `ip link` (the commands `kvmnet plan` prints); link.del deletes them. A link of that
name that is already there is an error, not success: it may not be kvmnet's."""

from __future__ import annotations

from ..render import macvtap as render
from .tc import _run


def run(step) -> None:
    first, *rest = render.add(step.args)
    _run(first)
    try:
        for argv in rest:
            _run(argv)
    except Exception:
        _run(["ip", "link", "del", step.args["name"]], ("Cannot find device",))
        raise
