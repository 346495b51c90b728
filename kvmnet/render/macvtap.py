"""A direct network's links as `ip link` commands (argv lists), pure: a macvtap per guest NIC,
and the host's macvlan, on the uplink."""

from __future__ import annotations


def add(args: dict) -> list[list[str]]:
    """{name, kind macvtap|macvlan, uplink, mode, mac (optional)}."""
    create = ["ip", "link", "add", args["name"], "link", args["uplink"], "type", args["kind"], "mode", args["mode"]]
    up = ["ip", "link", "set", args["name"]] + (["address", args["mac"]] if args.get("mac") else []) + ["up"]
    return [create, up]


def device(ifindex: int) -> str:
    """The character device QEMU reads and writes a macvtap's frames through."""
    return f"/dev/tap{ifindex}"
