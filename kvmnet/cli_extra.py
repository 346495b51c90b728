"""The verbs that show a topology or help the shell: graph, vagrant, completion, man; the shell
completion callbacks cli.py's arguments use; and each verb's --help example. register(main)
adds all of it to the click group (cli.py calls it once, after its own verbs)."""

from __future__ import annotations

import glob
import os

import click
from click.shell_completion import CompletionItem, get_completion_class

from . import exitcodes
from .cli_common import echo_json, fail, load
from .errors import KvmnetError

SHELLS = ("bash", "zsh", "fish")

# one example per verb, shown by --help and in the man pages (verbs added elsewhere add theirs here)
EXAMPLES = {
    "validate": "kvmnet validate topologies/nat.toml",
    "plan": "kvmnet plan --json topologies/nat.toml | jq '.steps[].describe'",
    "apply": "sudo kvmnet apply topologies/nat.toml",
    "destroy": "sudo kvmnet destroy topologies/nat.toml",
    "check": "kvmnet check --quiet topologies/nat.toml || sudo kvmnet apply topologies/nat.toml",
    "status": "kvmnet status topologies/nat.toml",
    "leases": "kvmnet leases --json default",
    "qemu-args": "qemu-system-x86_64 ... $(kvmnet qemu-args topologies/nat.toml web)",
    "run": "sudo kvmnet run topologies/nat.toml web -- -nographic",
    "ifup": "qemu-system-x86_64 ... -netdev tap,id=n0,ifname=kn-web-0,script=kvmnet-ifup,downscript=kvmnet-ifdown",
    "ifdown": "kvmnet ifdown kn-web-0",
    "graph": "kvmnet graph topologies/nat.toml --format dot | dot -Tsvg -o nat.svg",
    "vagrant": "kvmnet vagrant vagrant/lab/lab.toml -o vagrant/lab/kvmnet-networks.rb",
    "completion": "kvmnet completion bash > /etc/bash_completion.d/kvmnet",
    "man": "kvmnet man /usr/local/share/man/man1 && man kvmnet-graph",
    "import": "virsh net-dumpxml default > default.xml && kvmnet import libvirt default.xml -o default.toml",
    "export": "kvmnet export libvirt topologies/nat.toml -o nat.xml && virsh net-define nat.xml",
    "enable": "sudo kvmnet enable topologies/nat.toml && sudo kvmnet install-units",
    "disable": "sudo kvmnet disable --now nat",
    "list": "sudo kvmnet list --json",
    "apply-enabled": "sudo kvmnet apply-enabled   # what kvmnet.service runs at boot",
    "destroy-enabled": "sudo kvmnet destroy-enabled   # kvmnet.service's ExecStop",
    "install-units": "sudo kvmnet install-units && sudo systemctl daemon-reload && sudo systemctl enable kvmnet.service",
    "try": "sudo kvmnet try --timeout 60 topologies/nat.toml   # then `kvmnet confirm nat` from another shell",
    "confirm": "sudo kvmnet confirm topologies/nat.toml",
    "capture": "sudo kvmnet capture topologies/nat.toml default -o nat.pcap --duration 30 && tcpdump -r nat.pcap",
}


# ---------------------------------------------------------------- completion callbacks


def complete_topology(ctx, param, incomplete: str) -> list[CompletionItem]:
    """*.toml files starting with what is typed, and the shell's directory completion when a
    directory matches too (first: click's bash script resets its list at a "dir" item)."""
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


def complete_guest(ctx, param, incomplete: str) -> list[CompletionItem]:
    topo = _topology_of(ctx)
    return [CompletionItem(g.name) for g in topo.guests if g.name.startswith(incomplete)] if topo else []


def complete_network(ctx, param, incomplete: str) -> list[CompletionItem]:
    topo = _topology_of(ctx)
    return [CompletionItem(n.name) for n in topo.networks if n.name.startswith(incomplete)] if topo else []


def complete_applied_network(ctx, param, incomplete: str) -> list[CompletionItem]:
    """Networks of the topologies applied here (their records), for `kvmnet leases NETWORK`."""
    from .engine import record as records, statedir
    root = statedir.resolve(ctx.find_root().params.get("state_dir"))
    try:
        names = {net for rec in records.all_records(root) for net in rec.networks}
    except (KvmnetError, OSError):
        return []
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


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
    try:
        written = cli_man.write_pages(root, directory, EXAMPLES)
    except OSError as exc:
        click.echo(f"kvmnet: {directory}: {exc.strerror}", err=True)
        raise SystemExit(exitcodes.BAD_INPUT) from None
    click.echo(f"wrote {len(written)} man page(s) to {directory}")


def _epilog(name: str) -> str:
    example = EXAMPLES.get(name)
    parts = [f"\b\nExample:\n  {example}"] if example else []
    return "\n\n".join(parts + [exitcodes.text()])


def register(main: click.Group) -> None:
    """Add this module's verbs to `main`, and to every verb an epilog: its example, the exit codes."""
    for command in (graph, vagrant, completion, man_cmd):
        main.add_command(command)
    for name, command in main.commands.items():
        command.epilog = _epilog(name)
