"""The host's links, read on the other core while this process reads the topology file.

A 1000-tap host's link dump costs ~12 ms in the kernel and ~11 ms to parse, and the first
observation of every apply needs it; reading and validating the file (~100 ms when it changed,
~45 ms from the cache) needs nothing of the host. So a changing command, once it holds the
state lock, forks a child that dumps and parses the links (host/rtnl.py) and hands them over
through a pipe as one `marshal` dump of plain values; the first read of the links takes them.
The snapshot is as good as one taken later: under the lock no other kvmnet changes links, and
anyone else may change them at any moment either way. Anything amiss (the fork, the dump, the
child's end) leaves the read to do its own dump, as without a prefetch.
"""

from __future__ import annotations

import marshal

from . import forked, rtnl  # (here, not in the child: a fork imports nothing, so holds no import lock)

_pending: dict = {}  # "job": the child (forked.Job)


class links_while:
    """`with links_while(wanted):` a prefetch of the links (when wanted) that lives as long as
    the block: the caller's state lock is what makes the snapshot good, so none outlives it.
    (A class, as statedir.locked: contextlib is not imported on this path.)"""

    def __init__(self, wanted: bool = True):
        self.wanted = wanted

    def __enter__(self):
        if self.wanted:
            start_links()
        return self

    def __exit__(self, *exc) -> None:
        _drop()


def start_links() -> None:
    """Fork the child (once; a second call while one is pending does nothing)."""
    if _pending:
        return
    job = forked.Job(lambda: marshal.dumps(rtnl.dump_links()))
    if job.pid is None:
        return
    _pending["job"] = job
    import atexit

    atexit.unregister(_drop)  # (once, however often a process prefetches)
    atexit.register(_drop)


def _drop() -> None:
    """A prefetch nobody took (an error, a topology without links to read) ends now."""
    if _pending:
        _pending.pop("job").cancel()


def take_links() -> list[dict] | None:
    """The child's parse_link() dicts, once; None when there is no prefetch or it failed."""
    if not _pending:
        return None
    data = _pending.pop("job").result()
    if data is None:
        return None
    try:
        links = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return links if _plain(links) else None


def _plain(links) -> bool:
    """What rtnl.parse_link makes: a list of dicts with these keys (the child is this very code,
    but a value that crossed a pipe is checked before it is believed)."""
    return type(links) is list and all(type(l) is dict and _KEYS <= l.keys() and type(l["name"]) is str
                                       and type(l["index"]) is int for l in links)


_KEYS = frozenset({"index", "flags", "name", "mtu", "master", "mac", "group", "kind", "stp", "forward_delay"})
