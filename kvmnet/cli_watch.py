"""`kvmnet watch`: the verb around engine/watch.py (which decides) and host/events.py (which
waits). Prints one line per repair or failure on stderr (the journal, under systemd)."""

from __future__ import annotations

import signal
import sys
import time

import click

from . import cli_complete
from .cli_common import fail, load
from . import cli_common
from .errors import KvmnetError, InputError



def _log(line: str) -> None:
    click.echo(f"kvmnet watch: {time.strftime('%H:%M:%S')} {line}", err=True)


@click.command("watch")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("--once", is_flag=True, help="One pass: repair what drifted, then exit (1 if a repair failed).")
@click.pass_obj
def watch(state_root, files, once):
    """Keep every applied topology (or only FILEs') in sync with the host: on a change to its
    links, addresses, routes, firewall rules or dnsmasq, or a firewalld reload, re-plan and
    apply what differs, as `kvmnet apply` would. Destroyed topologies are dropped; nothing
    kvmnet does not own is touched. Runs in the foreground until SIGTERM or SIGINT."""
    import os
    from .engine.watch import Watcher
    if not cli_common.is_root():
        click.echo("kvmnet watch: needs root (CAP_NET_ADMIN to repair links, addresses and firewall rules); "
                   "run it with sudo", err=True)
        sys.exit(1)
    try:
        chosen = {topo.name: os.path.abspath(f) for f, topo in ((f, load(f)) for f in files)} if files else None
        watcher = Watcher(state_root, _log, chosen)
        if once:
            watcher.sync()
            sys.exit(1 if watcher.failed_last else 0)
        _run(watcher)
    except KvmnetError as exc:
        fail(exc)


def _run(watcher) -> None:
    from .host.events import Sources
    try:
        sources = Sources()
    except OSError as exc:
        fail(InputError(f"cannot subscribe to the host's events: {exc}"))
    sources.catch(signal.SIGTERM, signal.SIGINT)
    try:
        _log(f"watching {watcher.root} (event sources: rtnetlink, "
             + ", ".join(c.kind for c in sources.children) + ", dnsmasq exits)")
        watcher.run(sources)
    finally:
        sources.close()
    _log("stopped; everything stays applied")


def register(main: click.Group) -> None:
    main.add_command(watch)
