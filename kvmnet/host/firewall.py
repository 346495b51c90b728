"""kvmnet's firewall rules on the host, whichever backend holds them: this module only picks the
backend module (nftables.py, or iptables*.py for legacy xtables) for each observe and step."""

from __future__ import annotations


def observe(name: str, backend: str = "nftables", bridge_table: bool = True, known: dict | None = None) -> dict:
    """The backend's view of kvmnet's own rules for one topology (see each backend's observe);
    `known`: what nftables.observe returned before (it may still hold)."""
    if backend == "iptables":
        from . import iptables_read
        return iptables_read.observe(name)
    from . import nftables
    return nftables.observe(name, bridge_table, known)


def run(step) -> None:
    """firewall.apply / firewall.delete (/ firewall.elements, nftables only) on the step's backend."""
    if step.args["backend"] == "iptables":
        from . import iptables
        iptables.run(step)
    else:
        from . import nftables
        nftables.run(step)
