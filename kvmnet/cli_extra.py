"""The verbs that show a topology or help the shell: graph, vagrant, completion, man. register(main)
adds them to the click group (cli_lazy.py calls it when one of them is run or listed). The
shell completion callbacks are cli_complete.py's, each verb's --help example cli_lazy.py's."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from . import exitcodes
from .cli_common import echo_json, fail, load
from .cli_complete import complete_topology
from .cli_lazy import EXAMPLES
from .errors import KvmnetError

SHELLS = ("bash", "zsh", "fish")

# ---------------------------------------------------------------- verbs


def _write(text: str, out: str | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        with open(out, "w") as f:
            f.write(text)
    except OSError as exc:
        click.echo(f"kvmnet: {out}: {exc.strerror}", err=True)
        raise SystemExit(exitcodes.BAD_INPUT) from None


_FILE = click.argument("file", type=click.Path(dir_okay=False), shell_complete=complete_topology)
_OUT = click.option("-o", "--output", "out", metavar="OUT", type=click.Path(dir_okay=False), help="Write to OUT instead of stdout.")


@click.command()
@_FILE
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "text"]), default="text", show_default=True,
              help="Graphviz dot, a Mermaid `graph LR` block for Markdown, or a tree for the terminal.")
@_OUT
@click.option("--live", is_flag=True, help="Annotate what is applied on this host and what drifted (reads only).")
@click.pass_context
def graph(ctx, file, fmt, out, live):
    """Draw FILE: networks (mode, bridge, subnet, gateway, DHCP), guests and their NICs (MAC,
    address, tap), port forwards and uplinks."""
    from .render import graph as render
    try:
        topo = load(file)
        status = None
        if live:
            from .engine import live as live_status, statedir
            with statedir.locked(ctx.find_root().obj):
                status = live_status.status(topo, ctx.find_root().obj)
    except KvmnetError as exc:
        fail(exc)
    _write(render.render(topo, fmt, status), out)


@click.command()
@_FILE
@_OUT
@click.option("--json", "as_json", is_flag=True, help="Print each guest's NIC options as JSON instead of Ruby.")
def vagrant(file, out, as_json):
    """Print the Vagrantfile network lines (vagrant-libvirt) for FILE's guests: the same
    bridges, MACs and static addresses as the topology. A Vagrantfile loads the output with
    require_relative and calls kvmnet_networks(node.vm, NAME) for each machine."""
    import json
    from .render import vagrant as render
    try:
        topo = load(file)
    except KvmnetError as exc:
        fail(exc)
    if as_json and out is None:
        echo_json(render.as_json(topo))
        return
    _write(json.dumps(render.as_json(topo), indent=1) + "\n" if as_json else render.to_ruby(topo, file), out)


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx, shell):
    """Print the completion script for SHELL (verbs, options, topology files, and guest and
    network names read from the FILE already typed). Load it with, e.g. in ~/.bashrc,
    eval "$(kvmnet completion bash)"."""
    root = ctx.find_root()
    script = get_completion_class(shell)(root.command, {}, "kvmnet", "_KVMNET_COMPLETE").source()
    click.echo(script)


@click.command("man")
@click.argument("directory", type=click.Path(file_okay=False))
@click.pass_context
def man_cmd(ctx, directory):
    """Write kvmnet.1 and one kvmnet-VERB.1 page per verb into DIRECTORY, from these very
    --help texts."""
    from . import cli_man
    root = ctx.find_root().command
    root.every_command()  # the verbs not loaded yet (cli_lazy.py) have their pages too
    try:
        written = cli_man.write_pages(root, directory, EXAMPLES)
    except OSError as exc:
        click.echo(f"kvmnet: {directory}: {exc.strerror}", err=True)
        raise SystemExit(exitcodes.BAD_INPUT) from None
    click.echo(f"wrote {len(written)} man page(s) to {directory}")


def register(main: click.Group) -> None:
    """Add this module's verbs to `main`."""
    for command in (graph, vagrant, completion, man_cmd):
        main.add_command(command)
