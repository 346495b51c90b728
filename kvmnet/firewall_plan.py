"""Firewall and dnsmasq facts for NAT and routed networks (filled in by the NAT issue)."""

from __future__ import annotations


def firewall_actions(topo, observed, backend, sysctl):
    return []
