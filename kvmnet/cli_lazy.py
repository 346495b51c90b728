"""The verbs a start-up does not load. cli.py's group imports a rarely used verb's module (and
what it imports) only when that verb is run, or when all verbs are listed (--help, shell
completion, `kvmnet man`): a cold `kvmnet apply` loads none of them. Also what every verb gets
wherever it is defined: its --help epilog (example, exit codes), before most verbs the rollback
of an abandoned `kvmnet try`, and an exit that skips the last garbage collection."""

from __future__ import annotations

import atexit
import gc
import importlib

import click

from . import cli_common, exitcodes

# one example per verb ("GROUP VERB" for a group's own verbs), shown by --help and in the man pages
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
    "watch": "sudo kvmnet watch   # or: systemctl enable --now kvmnet-watch.service",
    "passt": "sudo kvmnet passt start topologies/passt.toml web   # then: kvmnet passt stop ...",
    "passt start": ("sudo kvmnet passt start topologies/passt.toml web && "
                    "qemu-system-x86_64 ... $(kvmnet qemu-args topologies/passt.toml web)"),
    "passt stop": "sudo kvmnet passt stop topologies/passt.toml web   # once QEMU has exited",
}

# verb -> the module whose register(group) adds it (with that module's other verbs)
LAZY = {"graph": "cli_extra", "vagrant": "cli_extra", "completion": "cli_extra", "man": "cli_extra",
        "import": "cli_interop", "export": "cli_interop", "capture": "cli_capture", "watch": "cli_watch",
        "passt": "cli_passt", **{verb: "cli_service" for verb in ("enable", "disable", "list", "apply-enabled",
                                                                 "destroy-enabled", "install-units", "try", "confirm")}}

def epilog(name: str) -> str:
    example = EXAMPLES.get(name)
    parts = [f"\b\nExample:\n  {example}"] if example else []
    return "\n\n".join(parts + [exitcodes.text()])


class LazyGroup(click.Group):
    """A click group that imports LAZY's modules when their verbs are asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        cmd.epilog = epilog(name or cmd.name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY:
            self._load(LAZY[cmd_name])
        elif cmd_name not in self.commands:
            self.every_command()  # a typo: click suggests the closest of all verbs
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(LAZY))

    def every_command(self) -> dict[str, click.Command]:
        """All verbs, loaded (for the man pages)."""
        for module in dict.fromkeys(LAZY.values()):
            self._load(module)
        return self.commands

    def _load(self, module: str) -> None:
        if module not in self._loaded:
            self._loaded.add(module)
            importlib.import_module(f"{__package__}.{module}").register(self)


def settle_tries(ctx: click.Context) -> None:
    """Before most verbs, the rollback of abandoned tries (cli_common.settle_tries)."""
    if not ctx.resilient_parsing:
        cli_common.settle_tries(ctx.invoked_subcommand, ctx.obj)


def freeze_at_exit() -> None:
    """At exit, freeze every object, so the interpreter's last cyclic garbage collection has
    nothing to look at: it cost a cold apply ~20 ms of CPU time, to find almost nothing (kvmnet
    closes its files with `with`; pyroute2's sockets and the like are closed by the exit itself).
    The garbage a verb makes while it runs is still collected as usual."""
    atexit.unregister(gc.freeze)  # once, however often a caller in this process runs a verb
    atexit.register(gc.freeze)
