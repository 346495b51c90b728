"""dnsmasq lease files -> lease records."""

from __future__ import annotations

import os

from .. import naming
from . import files


def parse(text: str) -> list[dict]:
    """dnsmasq's format: EXPIRY MAC IP HOSTNAME CLIENT-ID, one lease per line."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4:
            out.append({"expiry": int(cols[0]), "mac": cols[1], "ip": cols[2],
                        "hostname": None if cols[3] == "*" else cols[3]})
    return out


def read(state_dir: str, network: str) -> list[dict]:
    """The leases of one network (a private file in a checked directory: see files.py)."""
    return parse(files.read_private(naming.dnsmasq_paths(state_dir, network)["leases"]) or "")


def networks_in(state_dir: str) -> list[str]:
    """Networks of one applied topology that have a lease file."""
    try:
        names = os.listdir(naming.lease_dir(state_dir))
    except FileNotFoundError:
        return []
    return sorted(n[len("dnsmasq-"):-len(".leases")] for n in names
                  if n.startswith("dnsmasq-") and n.endswith(".leases"))
