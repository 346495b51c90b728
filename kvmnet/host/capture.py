"""`kvmnet capture`: record a kvmnet bridge's traffic to a pcap with tcpdump."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from ..errors import InputError
from . import rtnl


def tcpdump_argv(bridge: str, out: str) -> list[str]:
    """-U: every packet reaches the file as it is captured (a killed capture keeps what it
    saw); -s 0: whole frames."""
    exe = shutil.which("tcpdump")
    if exe is None:
        raise InputError("kvmnet capture needs tcpdump, which is not installed (apt-get install tcpdump); "
                         "or capture one guest's NIC with `capture = \"FILE.pcap\"` in its [[guests.NAME.nics]]")
    if rtnl.index_of(bridge) is None:
        raise InputError(f"bridge {bridge} does not exist here: apply the topology first")
    # as root, stay root (-Z): Debian's tcpdump otherwise writes the file as user tcpdump
    keep = ["-Z", "root"] if os.geteuid() == 0 else []
    return [exe, "-i", bridge, "-w", out, "-U", "-s", "0", "-n", *keep]


def run(argv: list[str], duration: float | None) -> int:
    """Until `duration` seconds have passed (then SIGINT, so tcpdump closes the file cleanly)
    or until the user's ^C reaches tcpdump too."""
    proc = subprocess.Popen(argv)
    try:
        return proc.wait(duration)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        return proc.wait()
    except KeyboardInterrupt:
        return proc.wait()
