"""The `kvmnet` command (pyproject's console script): the netlink worker's guess first
(cli_prestart.py), then the command line: `kvmnet apply [-q] FILE` without click's import
(cli_quick.py), any other through click (cli.py). Here and not in cli.py's import, so that
importing kvmnet.cli (tests, the bench's phase driver) never forks a worker from someone
else's argv.

The verbs that run once and end keep Python's cycle collector off: what they make is acyclic
(an apply of a big topology found 24 objects in 27 collections, which cost it ~10 ms, passing
over the topology's ~100,000 values again and again). Verbs that run on (watch) keep it.

Once the command is done, the process ends without the interpreter's teardown: freeing a big
topology's ~100,000 objects one by one, and every module, costs ~5 ms that the kernel does at
once. What teardown does that matters is done first: the exit handlers run (the netlink worker,
the prefetch child, libnftables contexts) and stdout and stderr are flushed. kvmnet runs no
threads and closes every file it writes with `with`; its locks are released with their fds.
"""

import atexit
import gc
import os
import sys

ONE_SHOT = ("apply", "destroy", "plan", "check", "validate")


def main():
    from . import cli_prestart

    cli_prestart.maybe_start(sys.argv)
    if cli_prestart.verb(sys.argv) in ONE_SHOT:
        gc.disable()
    from . import cli_quick

    quick = cli_quick.command(sys.argv[1:])
    try:
        if quick is not None:
            _end(cli_quick.run(*quick))
        from .cli import main as command

        command()  # click's standalone mode: it always ends with SystemExit
    except SystemExit as done:
        _end(done.code)
    return 0


def _end(code) -> None:
    if code is not None and not isinstance(code, int):  # as the interpreter words sys.exit("text")
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with that descriptor closed: nothing to flush
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: as the interpreter's exit, nothing more to say
            code = code or 120
    os._exit(code or 0)
