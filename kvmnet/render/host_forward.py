"""The only rules kvmnet writes into a chain it does not own: accepts in the host's filter
FORWARD for a bridge, when Docker has set that chain's policy to DROP (host/coexist.py writes
them, engine/plan/firewall.py decides when, engine/stepschema.py lets a record hold no others)."""

from __future__ import annotations


def host_forward_accepts(bridge: str, topology: str) -> dict[str, list[str]]:
    """The only rules kvmnet puts in the host's own filter FORWARD (under Docker's DROP policy,
    host/coexist.py): into, out of, and between the ports of one bridge, with its comment."""
    comment = ["-m", "comment", "--comment", f"kvmnet {topology}"]
    return {"in": ["-i", bridge, *comment, "-j", "ACCEPT"], "out": ["-o", bridge, *comment, "-j", "ACCEPT"],
            "between": ["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"]}
