"""kvmnet's VXLAN devices and their flooding entries, through iproute2's `ip` and `bridge`.

A stretched network's data plane on this host is one unicast VXLAN device per VNI, a port of the
network's bridge, with `nolearning` (remote MACs are found by the bridge, or with EVPN installed
by FRR's zebra, never learned by the VXLAN device from the underlay). With the static control
plane, each peer host gets one all-zeros FDB entry: broadcast and unknown frames are sent to every
peer (head-end replication). A handful of devices per host: one `ip` process each is cheap enough,
and iproute2 spells VXLAN's options better than a hand-built netlink message would.
"""

from __future__ import annotations

import json
import subprocess

from ..errors import HostError

ZERO_MAC = "00:00:00:00:00:00"


def _run(argv: list[str], ok_codes=(0,)) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"{' '.join(argv)}: {exc}") from None
    if done.returncode not in ok_codes:
        raise HostError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def _listing(argv: list[str], ok_codes=(0,)) -> list[dict]:
    """iproute2's -j output: a list of objects ([] for no output). Anything else (a tool that
    died mid-write, another iproute2's shape) is a HostError naming the command, never a traceback."""
    text = _run(argv, ok_codes)
    try:
        data = json.loads(text) if text.strip() else []
    except (ValueError, RecursionError):
        raise HostError(f"{' '.join(argv)}: output is not JSON: {text[:80]!r}") from None
    if type(data) is not list or not all(type(e) is dict for e in data):
        raise HostError(f"{' '.join(argv)}: output is not a list of objects: {text[:80]!r}")
    return data


def observe(names: list[str]) -> dict:
    """{"vxlan": {name: {vni, local, port, learning, port_learning}}, "fdb": {name: [peer, ...]}}
    for those of `names` that exist (the all-zeros entries only: the flooding list)."""
    out: dict = {"vxlan": {}, "fdb": {}}
    for name in names:
        links = _listing(["ip", "-j", "-d", "link", "show", "dev", name], ok_codes=(0, 1))
        info = _object(links[0].get("linkinfo")) if links else {}
        if info.get("info_kind") != "vxlan":
            continue
        data = _object(info.get("info_data"))
        port = _listing(["bridge", "-j", "-d", "link", "show", "dev", name])
        out["vxlan"][name] = {"vni": data.get("id"), "local": data.get("local"), "port": data.get("port"),
                              "learning": bool(data.get("learning")),
                              "port_learning": bool(port[0].get("learning", True)) if port else None}
        out["fdb"][name] = sorted(_flooded(name))
    return out


def add(a: dict) -> None:
    """Create the VXLAN device (again, with `replace`: its VNI, address or port drifted) and make
    it a port of its bridge, up."""
    if a.get("replace"):
        _run(["ip", "link", "del", "dev", a["name"]], ok_codes=(0, 1))
    argv = ["ip", "link", "add", a["name"]]
    if a.get("mtu"):
        argv += ["mtu", str(a["mtu"])]
    argv += ["type", "vxlan", "id", str(a["vni"]), "local", a["local"], "dstport", str(a["port"])]
    argv += [] if a.get("learning") else ["nolearning"]
    _run(argv)
    _run(["ip", "link", "set", "dev", a["name"], "master", a["master"], "up"])
    if a.get("port_learning") is False:  # EVPN: zebra installs remote MACs; the bridge must not learn them
        _run(["bridge", "link", "set", "dev", a["name"], "learning", "off"])


def fdb(a: dict, present: bool) -> None:
    """Flood `dev`'s frames to peer `dst`, or stop. The kernel refuses to append an entry that
    is there or delete one that is not; either way the goal holds (drift, or a run interrupted
    after this step and before its record write), so that is success, not a stuck apply."""
    try:
        _run(["bridge", "fdb", "append" if present else "del", ZERO_MAC, "dev", a["dev"], "dst", a["dst"]])
    except HostError:
        if (a["dst"] in _flooded(a["dev"])) != present:
            raise


def _flooded(dev: str) -> list[str]:
    """The peers `dev` floods to; none when `dev` is gone."""
    entries = _listing(["bridge", "-j", "fdb", "show", "dev", dev], ok_codes=(0, 1, 255))
    return [e["dst"] for e in entries if e.get("mac") == ZERO_MAC and type(e.get("dst")) is str and e["dst"]]


def remote_macs(name: str) -> list[dict]:
    """The MACs the VXLAN device forwards to a remote host (what EVPN, or a peer, installed)."""
    fdb = _listing(["bridge", "-j", "fdb", "show", "dev", name], ok_codes=(0, 1))
    return [{"mac": e["mac"], "dst": e["dst"], "extern_learn": type(e.get("flags")) is list and "extern_learn" in e["flags"]}
            for e in fdb if type(e.get("dst")) is str and e["dst"] and type(e.get("mac")) is str and e["mac"] != ZERO_MAC]


def _object(value) -> dict:
    return value if type(value) is dict else {}
