"""Which firewall backend this run uses: a probe of the host, so it lives with the host layer."""

from __future__ import annotations

from ..errors import InputError
from . import system


def choose(wanted: str | None, host=None, ipv6: bool = False) -> str:
    """`wanted` ("nftables", "iptables" or None for no preference) against what `host` offers:
    nftables where `nft` is installed, else iptables. The iptables probe (python-iptables,
    libip4tc, the kernel's legacy tables) runs only when iptables is asked for by name; `ipv6`
    (the topology has IPv6) extends it to ip6tables."""
    host = host or system.default()
    if wanted in (None, "nftables"):
        if host.nft_available():
            return "nftables"
        if wanted == "nftables":
            raise InputError("the nftables backend was asked for, but `nft` is not installed (apt-get install nftables)")
        return "iptables"
    problem = host.iptables_problem(ipv6)
    if problem:
        raise InputError(problem)
    return "iptables"
