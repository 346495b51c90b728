"""Bandwidth limits as tc commands (argv lists), pure.

A link's egress is shaped by a tbf root qdisc. Its ingress cannot be shaped where it arrives
(this kernel has no act_police, matchall or flower), so an ingress qdisc with a catch-all u32
filter redirects every packet (mirred) to an ifb device, and the ifb's egress is shaped. On a
tap, egress is traffic towards the guest (libvirt's `inbound`), ingress is what the guest sends.
"""

from __future__ import annotations

import hashlib

LATENCY = "50ms"  # how long a packet may wait in tbf's queue before it is dropped


def default_burst(bits_per_second: int) -> int:
    """Bytes: 20 ms at the rate, at least 32 KiB (a few full-size frames, and GSO packets)."""
    return max(32 * 1024, bits_per_second // 8 // 50)


def ifb_name(topology: str, dev: str) -> str:
    """The ifb that shapes `dev`'s ingress: derived, so a record can only name kvmnet's own."""
    return "kvb" + hashlib.sha256(f"{topology}/{dev}".encode()).hexdigest()[:12]


def shape(dev: str, rate: int, burst: int) -> list[str]:
    return ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", human_rate(rate),
            "burst", str(burst), "latency", LATENCY]


def redirect(dev: str, ifb: str) -> list[list[str]]:
    """Every packet arriving on `dev` goes out of `ifb` instead (and is shaped there)."""
    return [["tc", "qdisc", "replace", "dev", dev, "handle", "ffff:", "ingress"],
            ["tc", "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "prio", "1",
             "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb]]


def limit(args: dict) -> list[list[str]]:
    """The commands of a tc.limit step: {dev, direction in|out, rate, burst, ifb (out)}."""
    if args["direction"] == "in":
        return [shape(args["dev"], args["rate"], args["burst"])]
    ifb = args["ifb"]
    return ([["ip", "link", "add", ifb, "type", "ifb"], ["ip", "link", "set", ifb, "up"],
             shape(ifb, args["rate"], args["burst"])] + redirect(args["dev"], ifb))


def unlimit(args: dict) -> list[list[str]]:
    """The commands of a tc.unlimit step: {dev, direction, ifb (out)}."""
    if args["direction"] == "in":
        return [["tc", "qdisc", "del", "dev", args["dev"], "root"]]
    return [["tc", "qdisc", "del", "dev", args["dev"], "ingress"], ["ip", "link", "del", args["ifb"]]]


def human_rate(bits: int) -> str:
    for unit, size in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bit"
