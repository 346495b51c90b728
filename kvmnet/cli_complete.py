"""The shell completion callbacks of the verbs' arguments: topology files, and the guests and
networks of the FILE already typed or of the topologies applied here. A module of its own, and
click's completion module imported only when completing: cli.py's verbs name these callbacks
when they are defined, at every start-up."""

from __future__ import annotations

import glob
import os

from .errors import KvmnetError


def complete_topology(ctx, param, incomplete: str) -> list:
    """*.toml files starting with what is typed, and the shell's directory completion when a
    directory matches too (first: click's bash script resets its list at a "dir" item)."""
    from click.shell_completion import CompletionItem
    matches = glob.glob(glob.escape(incomplete) + "*")
    items = [CompletionItem(incomplete, type="dir")] if any(os.path.isdir(p) for p in matches) else []
    return items + [CompletionItem(p) for p in sorted(matches) if p.endswith(".toml") and os.path.isfile(p)]


def _topology_of(ctx):
    """The topology in the FILE already typed on the command line, or None (never an error)."""
    file = ctx.params.get("file")
    if not file:
        return None
    try:
        from . import config
        return config.load(file)
    except (KvmnetError, OSError):
        return None


def complete_guest(ctx, param, incomplete: str) -> list:
    from click.shell_completion import CompletionItem
    topo = _topology_of(ctx)
    return [CompletionItem(g.name) for g in topo.guests if g.name.startswith(incomplete)] if topo else []


def complete_network(ctx, param, incomplete: str) -> list:
    from click.shell_completion import CompletionItem
    topo = _topology_of(ctx)
    return [CompletionItem(n.name) for n in topo.networks if n.name.startswith(incomplete)] if topo else []


def complete_applied_network(ctx, param, incomplete: str) -> list:
    """Networks of the topologies applied here (their records), for `kvmnet leases NETWORK`."""
    from click.shell_completion import CompletionItem
    from .engine import record as records, statedir
    root = statedir.resolve(ctx.find_root().params.get("state_dir"))
    try:
        names = {net for rec in records.all_records(root) for net in rec.networks}
    except (KvmnetError, OSError):
        return []
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]
