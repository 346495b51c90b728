"""Before click and the rest of kvmnet are imported (kvmnet/entry.py, or cli.py run as a
module): start the netlink worker (pyroute2 on the other core, host/netlink_worker.py) when
this command will likely change links, so its import runs alongside ours. A guess from the
command line, never a decision: a wrong guess costs a worker nobody used, or a pyroute2 import
at the first change, as without one.

Likely: `destroy`; `apply` of a file never applied here (no validated copy of it in the state
dir, engine/topocache.py): it makes bridges, addresses and routes, which go through pyroute2.
Not: an edit of an applied file: the commonest, a guest added or removed, changes taps, leases
and forwards, none of which needs pyroute2 (host/rtnl.py makes and deletes taps), and the
worker's import on the other core made such an apply of the big topology ~40-60 ms slower on
the 2-core VM (interleaved runs); an edit that does change networks imports pyroute2 when its
first such step runs. Nor --dry-run, --help, a user who is not root, or KVMNET_NETLINK_WORKER=0.
"""

from __future__ import annotations

import os

_GLOBAL_WITH_VALUE = ("--state-dir", "--qemu-conf-dir")


def verb(argv: list[str]) -> str | None:
    """The verb of a kvmnet command line (after the global options), if any."""
    return _split(argv[1:])[0]


def maybe_start(argv: list[str]) -> None:
    if os.environ.get("KVMNET_NETLINK_WORKER") == "0" or os.geteuid() != 0:
        return
    verb, state_dir, rest = _split(argv[1:])
    if verb not in ("apply", "destroy") or {"--dry-run", "--help", "-h"} & set(rest):
        return
    files = [a for a in rest if not a.startswith("-") and os.path.isfile(a)]
    if not files:
        return
    if verb == "apply" and _applied_here(files[-1], state_dir):
        return
    from .host import netlink_worker

    netlink_worker.start()


def _split(args: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(verb, --state-dir's value, the verb's own arguments)"""
    state_dir, i = None, 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_WITH_VALUE:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            state_dir = value if name == "--state-dir" else state_dir
        elif not arg.startswith("-"):
            return arg, state_dir, args[i + 1:]
        i += 1
    return None, state_dir, []


def _applied_here(path: str, state_dir: str | None) -> bool:
    from .engine import statedir

    return os.path.exists(statedir.topology_cache(statedir.resolve(state_dir), path))
