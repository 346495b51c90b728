"""`kvmnet capture FILE NETWORK`: the whole network's traffic in a pcap (the per-NIC form is the
`capture` key of a NIC). Prints and exits; the work is in host/capture.py."""

from __future__ import annotations

import sys

import click

from .cli_common import fail, load
from .errors import InputError, KvmnetError
from .host import capture


@click.command("capture")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("network")
@click.option("-o", "--output", default=None, help="The pcap to write (default NETWORK.pcap).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: at ^C).")
def capture_cmd(file, network, output, duration):
    """Capture NETWORK's bridge traffic to a pcap with tcpdump."""
    try:
        topo = load(file)
        names = [n.name for n in topo.networks]
        if network not in names:
            raise InputError(f"{file}: no network {network!r} (networks: {', '.join(names) or 'none'})")
        net = topo.network(network)
        if not net.bridged:
            raise InputError(f"networks.{network} is mode {net.mode}: it has no bridge to capture on; "
                             "capture a guest's NIC with its `capture` key")
        argv = capture.tcpdump_argv(net.bridge, output or f"{network}.pcap")
    except KvmnetError as exc:
        fail(exc)
    click.echo(f"kvmnet: capturing {net.bridge} to {argv[argv.index('-w') + 1]}"
               f"{f' for {duration:g} s' if duration else ' until ^C'}", err=True)
    sys.exit(capture.run(argv, duration))


def register(main: click.Group) -> None:
    main.add_command(capture_cmd)
