"""dnsmasq lease files -> lease records."""

from __future__ import annotations

import os

from .. import naming
from . import files


def parse(text: str) -> list[dict]:
    """dnsmasq's format: `EXPIRY MAC IP HOSTNAME CLIENT-ID` per IPv4 lease; then, if it has
    DHCPv6 leases, a `duid SERVER-DUID` line and `EXPIRY IAID IPV6 HOSTNAME CLIENT-DUID` per
    IPv6 lease (IAID prefixed with T for a temporary address)."""
    out, v6 = [], False
    for line in text.splitlines():
        cols = line.split()
        if cols[:1] == ["duid"]:
            v6 = True
        elif len(cols) >= 4 and v6:
            duid = cols[4] if len(cols) > 4 and cols[4] != "*" else None
            out.append({"expiry": int(cols[0]), "mac": mac_of_duid(duid), "ip": cols[2],
                        "hostname": None if cols[3] == "*" else cols[3], "iaid": cols[1], "duid": duid})
        elif len(cols) >= 4:
            out.append({"expiry": int(cols[0]), "mac": cols[1], "ip": cols[2],
                        "hostname": None if cols[3] == "*" else cols[3]})
    return out


def mac_of_duid(duid: str | None) -> str | None:
    """The Ethernet address a DUID-LLT (type 1) or DUID-LL (type 3) carries (a DHCPv6 lease
    names its client by DUID, not by MAC; usually the client's NIC's own address), else None."""
    octets = duid.split(":") if duid else []
    if octets[:4] == ["00", "01", "00", "01"] and len(octets) == 14:
        return ":".join(octets[8:])
    if octets[:4] == ["00", "03", "00", "01"] and len(octets) == 10:
        return ":".join(octets[4:])
    return None


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
