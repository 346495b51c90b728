"""kvmnet import/export: other tools' network definitions in and out (libvirt's, for now).
Printing and exiting, like cli.py; the conversions themselves are pure (config/libvirt_xml.py
reads, render/libvirt_xml.py writes)."""

from __future__ import annotations

import sys

import click

from . import config
from .cli_common import fail as _fail, load as _load
from .errors import InputError, KvmnetError


@click.group("import")
def import_group():
    """Turn another tool's network definition into a kvmnet topology."""


@import_group.command("libvirt")
@click.argument("xml_file", metavar="NET.xml", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the topology here (default: stdout).")
def import_libvirt(xml_file, output):
    """A libvirt <network> definition (virsh net-dumpxml NAME) -> a commented kvmnet topology."""
    from .config import libvirt_xml
    try:
        toml = libvirt_xml.import_file(xml_file)
    except KvmnetError as exc:
        _fail(exc)
    _write_output(output, toml, f"{xml_file}: imported as {output}; `kvmnet validate {output}` accepts it")


@click.group("export")
def export_group():
    """Turn a kvmnet network into another tool's definition."""


@export_group.command("libvirt")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--network", default=None, help="The network to export (needed when FILE has several bridged ones).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the XML here (default: stdout).")
def export_libvirt(file, network, output):
    """A bridged network of FILE -> a libvirt <network> definition (virsh net-define OUT.xml)."""
    from .render import libvirt_xml
    try:
        topo = _load(file)
        bridged = [n.name for n in topo.networks if n.bridged]
        if network is None and len(bridged) != 1:
            raise InputError(f"{file}: {len(bridged)} bridged networks ({', '.join(bridged) or 'none'}); choose one with --network")
        network = network or bridged[0]
        if network not in bridged:
            raise InputError(f"{file}: no bridged network {network!r} (bridged: {', '.join(bridged) or 'none'})")
        refused = libvirt_xml.refusals(topo.network(network))
        if refused:
            raise InputError(config.locate(file, refused))
        xml = libvirt_xml.render(topo, topo.network(network))
    except KvmnetError as exc:
        _fail(exc)
    _write_output(output, xml, f"{file}: network {network} exported as {output}")


def _write_output(output, text: str, done: str) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        click.echo(f"kvmnet: {output}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    click.echo(done, err=True)


def register(main: click.Group) -> None:
    main.add_command(import_group)
    main.add_command(export_group)
