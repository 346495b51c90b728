"""Commands for running kvmnet as a host service: enable/disable/list topologies in the config
dir, apply-enabled/destroy-enabled (the kvmnet.service unit), install-units, try/confirm.

cli_lazy.py loads this module when one of them is run (`register(main)`). Every command that
looks at or changes the host first finishes the rollback of a `kvmnet try` that was abandoned
(killed) and whose deadline has passed: cli_lazy.settle_tries calls settle_abandoned_tries below
when a try's file is there. Like cli.py, this module prints and exits; the logic is in
engine/enabled.py and engine/trial.py, so `kvmnet watch` can call it too.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

import click

from . import cli_common

from . import config
from .engine import enabled, statedir, trial
from .errors import InputError, KvmnetError

_CONFIG_DIR = click.option("--config-dir", envvar="KVMNET_CONFIG_DIR", default=None,
                           help="Where enabled topologies live (default /etc/kvmnet).")


def _cli():
    """cli.py's helpers (_fail, _load, _need_root, _print_actions), imported when first needed:
    cli.py, the program, imports cli_lazy.py, which imports this module."""
    from . import cli
    return cli


def _say(text: str, err: bool = False) -> None:
    """Print, even when the terminal is gone (a try whose SSH session the change cut)."""
    try:
        click.echo(text, err=err)
    except OSError:
        pass


def _topology_name(arg: str) -> str:
    """A topology name, or a file (whose topology is meant)."""
    if arg.endswith(".toml") or os.sep in arg:
        try:
            return config.load(arg).name
        except KvmnetError:
            from . import naming
            return naming.topology_name_from_path(arg)
    return arg


# ------------------------------------------------------------------ enabled topologies


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--replace", is_flag=True, help="Another version of this topology is enabled: replace it.")
@_CONFIG_DIR
def enable(file, replace, config_dir):
    """Install a copy of FILE in the config dir; kvmnet.service applies it at boot."""
    config_dir = enabled.resolve(config_dir)
    try:
        target, written = enabled.enable(file, config_dir, replace)
    except KvmnetError as exc:
        _cli()._fail(exc)
    except OSError as exc:
        _cli()._fail(InputError(f"{config_dir}: {exc.strerror or exc}"))
    name = os.path.splitext(os.path.basename(target))[0]
    if not written:
        click.echo(f"{name}: already enabled as {target}")
        return
    click.echo(f"{name}: enabled as {target} (a copy of {file}: boot applies the copy; "
               f"after editing {file}, `kvmnet enable --replace {file}`)")


@click.command()
@click.argument("name")
@click.option("--now", is_flag=True, help="Also destroy the topology now.")
@_CONFIG_DIR
@click.pass_obj
def disable(state_root, name, now, config_dir):
    """Stop applying topology NAME at boot (and with --now destroy it)."""
    from . import engine
    if now:
        _cli()._need_root("disable --now")
    name = _topology_name(name)
    try:
        path = enabled.disable(name, enabled.resolve(config_dir))
        click.echo(f"{name}: disabled (removed {path})")
        if now:
            with statedir.locked(state_root):
                result = engine.destroy(name, state_root)
            n = len(result.actions)
            click.echo(f"{name}: destroyed ({n} step(s))" if n else f"{name}: nothing to destroy")
        elif os.path.isfile(os.path.join(state_root, name, "state.json")):
            click.echo(f"{name}: still applied until `kvmnet destroy` (or `kvmnet disable --now`)")
    except KvmnetError as exc:
        _cli()._fail(exc)


@click.command("list")
@click.option("--json", "as_json", is_flag=True)
@_CONFIG_DIR
@click.pass_obj
def list_cmd(state_root, as_json, config_dir):
    """Enabled and applied topologies side by side, with whether each is in sync."""
    _cli()._need_root("list")
    config_dir = enabled.resolve(config_dir)
    try:
        with statedir.locked(state_root):
            rows = enabled.overview(config_dir, state_root)
            tries = {p.topology: p for p in trial.all_pending(state_root)}
    except KvmnetError as exc:
        _cli()._fail(exc)
    for row in rows:
        if row.name in tries:
            row.state += f"; try pending until {time.strftime('%H:%M:%S', time.localtime(tries[row.name].deadline))}"
    if as_json:
        click.echo(json.dumps({"config_dir": config_dir, "state_dir": state_root,
                               "topologies": [r.to_json() for r in rows]}, indent=1))
        return
    if not rows:
        click.echo(f"nothing enabled ({config_dir}) and nothing applied ({state_root})")
        return
    table = [("TOPOLOGY", "ENABLED", "APPLIED FROM", "STATE")]
    table += [(r.name, r.enabled or "-", r.applied or "-", r.state) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[3])


def _report(outcomes, verb: str) -> None:
    failed = [o for o in outcomes if o.error]
    for o in outcomes:
        if o.error:
            click.echo(f"{o.name}: FAILED ({o.file}): {o.error}", err=True)
            for line in getattr(o.error, "rolled_back", None) or []:
                click.echo(f"  rolled back: {line}", err=True)
        else:
            n = len(o.result.actions)
            click.echo(f"{o.name}: {verb} {n} step(s) ({o.file})" if n else f"{o.name}: nothing to do ({o.file})")
    if failed:
        click.echo(f"kvmnet: {len(failed)} of {len(outcomes)} enabled topologies failed: "
                   f"{', '.join(o.name for o in failed)}", err=True)
        sys.exit(1)


@click.command("apply-enabled")
@_CONFIG_DIR
@click.pass_obj
def apply_enabled(state_root, config_dir):
    """Apply every enabled topology, each on its own (kvmnet.service's start; exit 1 if any failed)."""
    _cli()._need_root("apply-enabled")
    config_dir = enabled.resolve(config_dir)
    outcomes = enabled.apply_all(config_dir, state_root)
    if not outcomes:
        click.echo(f"no enabled topologies in {config_dir}")
    _report(outcomes, "applied")


@click.command("destroy-enabled")
@_CONFIG_DIR
@click.pass_obj
def destroy_enabled(state_root, config_dir):
    """Destroy every enabled topology that is applied (kvmnet.service's stop)."""
    _cli()._need_root("destroy-enabled")
    _report(enabled.destroy_all(enabled.resolve(config_dir), state_root), "destroyed")


@click.command("install-units")
@click.option("--dir", "directory", default=None, help="Where to put them (default /etc/systemd/system).")
@click.option("--exec", "kvmnet_exec", default=None, help="The kvmnet command the units run (default: this one).")
@_CONFIG_DIR
def install_units(directory, kvmnet_exec, config_dir):
    """Place kvmnet's systemd units (pip cannot), filled in with this kvmnet's path."""
    from .host import units
    exe = kvmnet_exec or units.kvmnet_command()
    if not exe or not os.path.isabs(exe):
        _cli()._fail(InputError("cannot tell where the kvmnet command is; say --exec /ABSOLUTE/PATH/kvmnet"))
    try:
        paths = units.install(directory or units.DEFAULT_DIR, exe, enabled.resolve(config_dir))
    except OSError as exc:
        _cli()._fail(InputError(f"{directory or units.DEFAULT_DIR}: {exc.strerror or exc}"))
    for path in paths:
        click.echo(f"installed {path}")
    click.echo("then: systemctl daemon-reload && systemctl enable kvmnet.service")


# ------------------------------------------------------------------ try / confirm


class _Stop(Exception):
    """SIGTERM or SIGHUP during a try: roll back, as Ctrl-C does."""


def _raise_stop(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _read_answer(fd: int, timeout: float) -> str | None:
    """A line typed on the terminal within `timeout` ('' at end of file or a lost terminal)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    try:
        return os.read(fd, 1024).decode(errors="replace") or ""
    except OSError:
        return ""


def _wait(state_root: str, pending: trial.Pending) -> str:
    """Wait for the verdict: 'confirmed' (y on the terminal, or `kvmnet confirm`), 'timed out',
    'declined' (n on the terminal), or 'ended' (the marker is gone: another command took over)."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    while True:
        with statedir.locked(state_root):
            current = trial.load(state_root, pending.topology)
            if current is None or current.confirmed:
                return "confirmed" if current else "ended"
            left = pending.deadline - time.time()
            if left <= 0:
                return "timed out"
        if fd is None:
            time.sleep(min(left, 0.2))
            continue
        answer = _read_answer(fd, min(left, 0.2))
        if answer == "":
            fd = None  # end of file is not a confirmation: wait for `kvmnet confirm` alone
        elif answer is not None and answer.strip().lower() in ("y", "yes"):
            with statedir.locked(state_root):
                try:
                    trial.confirm(state_root, pending.topology)
                except KvmnetError:
                    continue  # too late, or already confirmed: the next round tells
            return "confirmed"
        elif answer is not None and answer.strip().lower() in ("n", "no"):
            return "declined"
        elif answer is not None:
            _say("type y to keep the change, n to roll it back now", err=True)


def _roll_back(state_root: str, pending: trial.Pending, why: str) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the rollback short
    try:
        with statedir.locked(state_root):
            if trial.load(state_root, pending.topology) is None:
                _say(f"kvmnet: the try of {pending.file} ended elsewhere ({why}); nothing rolled back here", err=True)
                sys.exit(1)
            result = trial.roll_back(state_root, pending)
    except KvmnetError as exc:
        _say(f"kvmnet: {pending.file} was not confirmed ({why}) and the rollback failed: {exc}; "
             "the next kvmnet command tries again", err=True)
        sys.exit(1)
    _say(f"kvmnet: {pending.file} was not confirmed ({why}): rolled back: {_restored(pending, result)}", err=True)
    sys.exit(1)


def _restored(pending: trial.Pending, result) -> str:
    n = len(result.actions)
    if pending.previous:
        return f"re-applied the version applied before, from {pending.previous['file']} ({n} step(s))"
    return f"destroyed topology {pending.topology}, which was not applied before ({n} step(s))"


@click.command("try")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--timeout", type=click.IntRange(min=1), default=120, show_default=True,
              help="Seconds to wait for the confirmation before rolling back.")
@click.option("--firewall", type=click.Choice(["nftables", "iptables"]), default=None)
@click.option("--replace", is_flag=True, help="FILE's topology is applied here from another file: replace it.")
@click.pass_obj
def try_cmd(state_root, file, timeout, firewall, replace):
    """Apply FILE, and roll it back unless confirmed in time: `y` here, or `kvmnet confirm FILE`."""
    cli = _cli()
    cli._need_root("try")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    pending = None
    try:
        topo = cli._load(file)
        with statedir.locked(state_root):
            pending, result = trial.begin(topo, state_root, timeout, firewall, replace)
        n = len(result.actions)
        cli._print_actions(result.actions, f"{topo.name}: applied {n} step(s) on trial" if n else
                           f"{topo.name}: already in sync; on trial all the same")
        until = time.strftime("%H:%M:%S", time.localtime(pending.deadline))
        here = "Type y (and Enter) here, or run" if sys.stdin is not None and sys.stdin.isatty() else "Run"
        _say(f"Keep it? {here} `kvmnet confirm {file}` from another shell before {until} ({timeout} s); "
             "otherwise it is rolled back.", err=True)
        verdict = _wait(state_root, pending)
    except KvmnetError as exc:
        cli._fail(exc)
    except (KeyboardInterrupt, _Stop) as exc:
        if pending is None:  # during the apply: its transaction has rolled back
            _say(f"kvmnet: interrupted before {file} was applied: nothing changed", err=True)
            sys.exit(1)
        verdict = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped by {exc}"
    if verdict == "confirmed":
        with statedir.locked(state_root):
            trial.finish(state_root, pending)
        _say(f"{pending.topology}: confirmed; {file} stays applied")
        return
    _roll_back(state_root, pending, verdict)


@click.command()
@click.argument("file")
@click.pass_obj
def confirm(state_root, file):
    """Keep the change a running `kvmnet try FILE` made (FILE, or the topology's name)."""
    try:
        with statedir.locked(state_root):
            on_trial = [p.topology for p in trial.all_pending(state_root)
                        if os.path.realpath(p.file) == os.path.realpath(file)]
            name = on_trial[0] if on_trial else _topology_name(file)
            pending = trial.confirm(state_root, name)
    except KvmnetError as exc:
        _cli()._fail(exc)
    click.echo(f"{name}: confirmed; {pending.file} stays applied")


# ------------------------------------------------------------------ registration


def settle_abandoned_tries(state_root: str) -> None:
    """Finish the rollback of every try whose process is gone and whose deadline has passed."""
    try:
        if not any(n.endswith(trial.SUFFIX) for n in os.listdir(state_root)):
            return
    except OSError:
        return
    if not cli_common.is_root():
        _say("kvmnet: a `kvmnet try` may await its rollback; run kvmnet as root to finish it", err=True)
        return
    try:
        with statedir.locked(state_root):
            for pending, result in trial.settle_expired(state_root):
                _say(f"kvmnet: the try of {pending.file} was not confirmed by "
                     f"{time.strftime('%H:%M:%S', time.localtime(pending.deadline))}: rolled back: "
                     f"{_restored(pending, result)}", err=True)
    except KvmnetError as exc:
        _say(f"kvmnet: could not finish rolling back an unconfirmed try: {exc}; the next command tries again", err=True)


COMMANDS = (enable, disable, list_cmd, apply_enabled, destroy_enabled, install_units, try_cmd, confirm)


def register(group: click.Group) -> None:
    """Add this module's verbs to cli.py's group (cli_lazy.settle_tries settles abandoned tries)."""
    for command in COMMANDS:
        group.add_command(command)
