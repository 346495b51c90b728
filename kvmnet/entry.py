"""The `kvmnet` command (pyproject's console script): the netlink worker's guess first
(cli_prestart.py), then the command line. Here and not in cli.py's import, so that importing
kvmnet.cli (tests, the bench's phase driver) never forks a worker from someone else's argv."""

import sys


def main():
    from . import cli_prestart

    cli_prestart.maybe_start(sys.argv)
    from .cli import main as command

    return command()
