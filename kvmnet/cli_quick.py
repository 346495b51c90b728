"""`kvmnet apply [-q] FILE`, the commonest command line, run without importing click: click and
what it imports (inspect, typing, uuid, datetime, ...) are ~25 ms of the start-up of every apply,
nearly a tenth of a small change to a big topology. kvmnet/entry.py asks here first.

The line runs the code cli.py's `apply` command runs (cli_common.apply_file, with the group's
state-dir and QEMU conf-dir handling before it), so it prints the same words and exits with the
same codes. Only a line read here exactly is taken: anything else (another option or verb,
--help, a FILE that starts with '-', is a directory or cannot be read, $KVMNET_HOST) goes to
click, with its parsing and its messages.
"""

from __future__ import annotations

import os
import sys

_QUIET = ("-q", "--quiet")


def command(args: list[str]) -> tuple[str, bool] | None:
    """(FILE, quiet) for `apply FILE`, `apply -q FILE` or `apply FILE --quiet`; None: click's."""
    if len(args) not in (2, 3) or args[0] != "apply" or os.environ.get("KVMNET_HOST"):
        return None
    files = [a for a in args[1:] if a not in _QUIET]
    file = files[0] if len(files) == 1 else ""
    if not file or file.startswith("-") or os.path.isdir(file) or os.path.exists(file) and not os.access(file, os.R_OK):
        return None  # (click words a directory, an unreadable FILE, a missing one and an unknown option)
    return file, len(args) == 3


def run(file: str, quiet: bool) -> int:
    """The apply; its exit code (a failure exits through cli_common.fail)."""
    from . import cli_common
    from .engine import statedir

    state_root = statedir.resolve(None)  # ($KVMNET_STATE_DIR, else the default, as click passes it)
    conf_dir = os.environ.get("KVMNET_QEMU_CONF_DIR")
    if conf_dir:  # as cli.py's group: host/qemu_acl.py reads it where the engine asks
        os.environ["KVMNET_QEMU_CONF_DIR"] = os.path.abspath(conf_dir)
    try:
        cli_common.settle_tries("apply", state_root)
        cli_common.apply_file(state_root, file, None, False, quiet)
    except (KeyboardInterrupt, EOFError):  # click's words for an interrupted command
        cli_common.echo(err=True)
        cli_common.echo("Aborted!", err=True)
        return 1
    except BrokenPipeError:  # stdout closed early (`| head`): as click, exit 1 without a word
        sys.stdout = None
        return 1
    return 0
