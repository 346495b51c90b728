"""What every verb's code shares: reporting a kvmnet error and exiting, loading a file with its
warnings, and printing --json documents. (cli.py and cli_extra.py both print and exit.)

Every --json document is one object with "version": 1 first; keys are only ever added within a
version, never renamed or removed, so scripts can rely on the ones they read.
"""

from __future__ import annotations

import json
import sys

import click

from . import config
from .errors import InputError, KvmnetError

JSON_VERSION = 1


def fail(exc: KvmnetError) -> None:
    click.echo(f"kvmnet: {exc}" if not isinstance(exc, InputError) else str(exc), err=True)
    rolled = getattr(exc, "rolled_back", None)
    if rolled:
        click.echo("rolled back:", err=True)
        for line in rolled:
            click.echo(f"  {line}", err=True)
    sys.exit(exc.exit_code)


def load(file: str):
    """config.load plus warnings about the file itself (printed, never fatal)."""
    for warning in config.file_warnings(file):
        click.echo(f"kvmnet: {warning}", err=True)
    return config.load(file)


def echo_json(doc: dict) -> None:
    click.echo(json.dumps({"version": JSON_VERSION, **doc}, indent=1))
