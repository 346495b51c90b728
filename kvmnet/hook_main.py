"""kvmnet-ifup / kvmnet-ifdown entry points: parse QEMU's `SCRIPT TAP`, call hook.py, print, exit.
Like cli.py, this module prints and exits; hook.py only decides and acts. Standard library only:
QEMU runs it at every guest start and stop."""

from __future__ import annotations

import os
import sys

from .errors import KvmnetError
from .hook import ifdown, ifup


def _main(action, argv: list[str]) -> int:
    args, network, state_dir = [], None, None
    it = iter(argv)
    for word in it:
        if word in ("--network", "-n"):
            network = next(it, None)
        elif word.startswith("--network="):
            network = word.split("=", 1)[1]
        elif word == "--state-dir":
            state_dir = next(it, None)
        else:
            args.append(word)
    if len(args) != 1:
        print(f"usage: {os.path.basename(sys.argv[0])} [--network NET] [--state-dir DIR] TAP", file=sys.stderr)
        return 2
    try:
        message = action(args[0], network, state_dir) if action is ifup else action(args[0], state_dir)
    except KvmnetError as exc:
        print(f"kvmnet: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"kvmnet: {args[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if os.environ.get("KVMNET_VERBOSE"):
        print(message, file=sys.stderr)
    return 0


def ifup_main() -> None:
    sys.exit(_main(ifup, sys.argv[1:]))


def ifdown_main() -> None:
    sys.exit(_main(ifdown, sys.argv[1:]))
