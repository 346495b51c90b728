"""`kvmnet passt start|stop FILE GUEST`: a guest's passt processes (one per NIC on a passt
network) for people who start QEMU themselves; `kvmnet run` does the same around QEMU."""

from __future__ import annotations

import click

from . import cli_complete, cli_lazy
from .cli_common import fail, load
from .errors import InputError, KvmnetError


@click.group("passt")
def passt():
    """A guest's passt processes (user-mode networking, one per NIC on a passt network)."""


def _guest(file: str, guest: str):
    topo = load(file)
    if guest not in {g.name for g in topo.guests}:
        raise InputError(f"{file}: no guest {guest!r}")
    return topo


def _file_and_guest(verb):
    """FILE and GUEST arguments (completed from the file) and the state dir, for both verbs."""
    verb = click.pass_obj(verb)
    verb = click.argument("guest", shell_complete=cli_complete.complete_guest)(verb)
    return click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)(verb)


@passt.command("start")
@_file_and_guest
def start(state_root, file, guest):
    """Start GUEST's passts (if not running) and print each one's socket and pid."""
    from .engine import passt as engine_passt
    try:
        topo = _guest(file, guest)
        for socket, pid in engine_passt.start(topo, guest, state_root):
            click.echo(f"passt {pid} serving {socket}")
    except KvmnetError as exc:
        fail(exc)


@passt.command("stop")
@_file_and_guest
def stop(state_root, file, guest):
    """Stop GUEST's passts and remove their sockets."""
    from .engine import passt as engine_passt
    try:
        stopped = engine_passt.stop(_guest(file, guest), guest, state_root)
    except KvmnetError as exc:
        fail(exc)
    click.echo(f"stopped passt {', '.join(map(str, stopped))}" if stopped else "no passt was running")


def around_qemu(topo, guest: str, state_root: str, dry_run: bool):
    """For `kvmnet run`: start the guest's passts; returns what stops them once QEMU exits."""
    from .engine import passt as engine_passt
    if dry_run or not engine_passt.needed(topo, guest):
        return lambda: None
    for socket, pid in engine_passt.start(topo, guest, state_root):
        click.echo(f"kvmnet: passt {pid} serving {socket}", err=True)

    def stop():
        try:
            engine_passt.stop(topo, guest, state_root)
        except KvmnetError as exc:
            click.echo(f"kvmnet: stopping passt: {exc}", err=True)
    return stop


def register(main: click.Group) -> None:
    main.add_command(passt)
    for name, command in passt.commands.items():
        command.epilog = cli_lazy.epilog(f"passt {name}")
