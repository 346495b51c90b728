"""What every verb's code shares: reporting a kvmnet error and exiting, loading a file with its
warnings, running a verb under the state lock, printing steps and --json documents; and the
apply verb itself, which cli.py's click command and cli_quick.py's click-free line both run.
(cli.py, cli_extra.py and cli_quick.py print and exit.) Without click: it prints through
echo(), which writes what click.echo writes for kvmnet's plain text (the line, flushed).

Every --json document is one object with "version": 1 first; keys are only ever added within a
version, never renamed or removed, so scripts can rely on the ones they read.
"""

from __future__ import annotations

import json
import os
import sys

from . import config
from .engine import statedir
from .host import prefetch
from .errors import InputError, KvmnetError

JSON_VERSION = 1


def echo(text: str = "", err: bool = False) -> None:
    """A line on stdout (stderr), flushed at once, as click.echo writes it: ANSI escapes (in a
    file name, say) dropped unless the stream is a terminal, and UTF-8 where the stream's own
    encoding cannot say a character."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # started with that descriptor closed: nothing to write to
        return
    line = f"{text}\n"
    if "\033" in line and not stream.isatty():
        import re

        line = re.sub(r"\033\[[;?0-9]*[a-zA-Z]", "", line)  # (click's pattern)
    try:
        stream.write(line)
    except UnicodeEncodeError:  # an ASCII locale: the bytes as UTF-8, as click writes them
        stream.flush()
        stream.buffer.write(line.encode("utf-8", "replace"))
    stream.flush()


def fail(exc: KvmnetError) -> None:
    echo(f"kvmnet: {exc}" if not isinstance(exc, InputError) else str(exc), err=True)
    rolled = getattr(exc, "rolled_back", None)
    if rolled:
        echo("rolled back:", err=True)
        for line in rolled:
            echo(f"  {line}", err=True)
    sys.exit(exc.exit_code)


def need_root(what: str) -> None:
    if not is_root():
        echo(f"kvmnet {what}: needs root (CAP_NET_ADMIN to change links, addresses and firewall rules); "
             "run it with sudo", err=True)
        sys.exit(1)


def inside_qemu(topo, file: str) -> str | None:
    """plan's and status's wording for a topology with no bridged network (not "in sync")."""
    if any(n.bridged for n in topo.networks):
        return None
    nets = ", ".join(f"{n.name} ({n.mode})" for n in topo.networks) or "none"
    return (f"{topo.name}: nothing to apply on this host: its networks live inside QEMU ({nets}); "
            f"`kvmnet qemu-args {file} GUEST` prints a guest's options")


def print_actions(actions, header: str) -> None:
    echo(header)
    for i, a in enumerate(actions, 1):
        echo(f"  {i:>3}. {a.do.describe()}")
        echo(f"       $ {a.do.command()}")


def apply_file(state_root: str, file: str, firewall: str | None, replace: bool, quiet: bool) -> None:
    """`kvmnet apply FILE` (not --dry-run: that is plan's)."""
    from . import engine

    need_root("apply")
    topo, result = locked(state_root, file, lambda topo: engine.apply(topo, state_root, firewall, replace=replace),
                          links=True)
    n = len(result.actions)
    if quiet:
        return
    print_actions(result.actions, f"{topo.name}: applied {n} step(s); verified in sync" if n else
                  inside_qemu(topo, file) or f"{topo.name}: already in sync; nothing changed")


# verbs before which an abandoned try past its deadline is rolled back first
SETTLES = {"apply", "plan", "check", "status", "destroy", "run", "leases", "try", "confirm", "list",
           "apply-enabled", "destroy-enabled", "enable", "disable"}


def settle_tries(verb: str | None, state_root: str) -> None:
    """Before a verb in SETTLES: finish the rollback of every abandoned try past its deadline
    (cli_service.py, imported only when a try's file is in the state dir)."""
    if verb not in SETTLES:
        return
    from .engine.statedir import TRY_SUFFIX
    try:
        if not any(n.endswith(TRY_SUFFIX) for n in os.listdir(state_root)):
            return
    except OSError:
        return
    from . import cli_service
    cli_service.settle_abandoned_tries(state_root)


def load(file: str, state_root: str | None = None):
    """config.load plus warnings about the file itself (printed, never fatal); with
    `state_root`, through the state dir's cache of validated topologies (engine/topocache.py)."""
    _warn_about(file)
    if state_root is None:
        return _with_host(config.load(file))
    from .engine import topocache
    return _with_host(topocache.load(file, state_root))


def load_name(file: str, state_root: str) -> str:
    """The name of FILE's topology (all that destroy needs): from the state dir's cache when it
    holds this very file, as this kvmnet validated it; else load()'s, errors and all."""
    from .engine import topocache
    name = topocache.cached_name(file, state_root)
    if name is None:
        return load(file, state_root).name
    _warn_about(file)
    return name


def _warn_about(file: str) -> None:
    for warning in config.file_warnings(file):
        echo(f"kvmnet: {warning}", err=True)


def echo_json(doc: dict) -> None:
    echo(json.dumps({"version": JSON_VERSION, **doc}, indent=1))


# --host NAME (or $KVMNET_HOST): which [hosts] entry of a multi-host file this host is, on the
# verbs that act on this host's part (default: the entry whose underlay address is local)
_HOST: dict = {"name": None}


def _set_host(ctx, param, value):
    _HOST["name"] = value or None
    ctx.call_on_close(lambda: _HOST.update(name=None))  # for this verb only
    return value


def add_host_option(group, verbs: tuple[str, ...]) -> None:
    import click  # (cli.py's, at its import: a click-free apply never calls this)

    for verb in verbs:
        group.commands[verb].params.append(click.Option(
            ["--host", "host_name"], envvar="KVMNET_HOST", default=None, expose_value=False, is_eager=True,
            callback=_set_host, metavar="NAME",
            help="Which [hosts] entry of a multi-host file this host is (default: the one whose underlay address is local)."))


def _with_host(topo):
    """A multi-host file with --host noted (engine/overlay.py decides against the host)."""
    from .engine import overlay
    name = _HOST["name"]
    return overlay.with_host(topo, name) if name or topo.overlay else topo


def host_words(ctx) -> str:
    """" on host h2" for a multi-host file's plan."""
    me = ctx.topo.overlay.me if ctx.topo.overlay else None
    return f" on host {me}" if me else ""


def host_json(ctx) -> dict:
    return {"host": ctx.topo.overlay.me} if ctx.topo.overlay else {}


def networks_summary(topo) -> str:
    """`validate`'s words for the networks (and, in a multi-host file, what spans which hosts)."""
    ov = topo.overlay
    vx = {name: f", VXLAN {v.vni} {v.control} over {' '.join(v.hosts)}" for name, v in (ov.vxlans if ov else ())}
    nets = ", ".join(f"{n.name} ({n.mode}{vx.get(n.name, '')})" for n in topo.networks) or "none"
    return nets + (f"; hosts: {', '.join(h.name for h in ov.hosts)}" if ov else "")


def is_root() -> bool:
    """Whether this process may change the host (tests stand in for root here only, never in
    the state dir's trust checks, which read the real uid)."""
    return os.geteuid() == 0


def open_direct(opened: list[tuple[int, str]]) -> list[int]:
    """`kvmnet run`: open each /dev/tapN on the descriptor QEMU's fd= names; they stay open for QEMU."""
    for fd, dev in opened:
        raw = os.open(dev, os.O_RDWR)
        if raw != fd:
            os.dup2(raw, fd, inheritable=True)
            os.close(raw)
        os.set_inheritable(fd, True)
    return [fd for fd, _ in opened]


def locked(state_root: str, file: str, work, shared: bool = False, load=load, links: bool = False):
    """Load FILE, then run work(topo) holding the state lock (`shared`: a verb that writes nothing,
    without root where it can); a kvmnet error is printed and exits (2: bad input or a conflict,
    nothing changed; 1: a failure on the host). `links`: apply, in a state dir that exists, takes
    the lock first and has the links read on the other core while FILE loads (host/prefetch.py)."""
    try:
        if links and os.path.isdir(state_root):  # (a file's problems never create the state dir)
            with statedir.locked(state_root), prefetch.links_while(True):
                topo = load(file, state_root)
                return topo, work(topo)
        topo = load(file, state_root)
        with statedir.locked(state_root, shared=shared):
            return topo, work(topo)
    except KvmnetError as exc:
        fail(exc)
