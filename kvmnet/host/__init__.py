"""Executors: the only code that touches the host (netlink, /proc/sys, firewall, processes)."""
