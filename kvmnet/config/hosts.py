"""The multi-host keys -> model.Overlay: [hosts.NAME] underlay, [networks.N.vxlan] (vni, control,
port, hosts), a network's gateway_host and a guest's host. Pure.

`take` lifts these keys out of the raw network and guest tables before networks.py and guests.py
read them (so those modules stay single-host); `check` validates what spans hosts once the
networks and guests are known.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from .. import naming
from ..model import Guest, HostEntry, Network, Overlay, VIRTUAL_MODES, Vxlan
from .tomlread import Reader

CONTROLS = ("static", "evpn")
MAX_HOSTS = 64
_NET_KEYS = ("vxlan", "gateway_host")


def take(r: Reader, data: dict, nets_raw: dict, guests_raw: dict):
    """(networks without the overlay keys, guests without `host`, Overlay or None)."""
    hosts = _hosts(r, data.get("hosts"))
    names = [h.name for h in hosts]
    vxlans, plain_nets = [], {}
    for key, raw in nets_raw.items():
        if isinstance(raw, dict) and any(k in raw for k in _NET_KEYS):
            vx = _vxlan(r, raw, ("networks", key), names)
            if vx is not None:
                vxlans.append((key, vx))
            raw = {k: v for k, v in raw.items() if k not in _NET_KEYS}
        plain_nets[key] = raw
    guest_hosts, plain_guests = [], {}
    for key, raw in guests_raw.items():
        if isinstance(raw, dict) and "host" in raw:
            host = r.get(raw, "host", ("guests", key), str)
            if host is not None and host not in names:
                r.error(("guests", key, "host"), _unknown(host, names))
            elif host is not None:
                guest_hosts.append((key, host))
            raw = {k: v for k, v in raw.items() if k != "host"}
        elif hosts and isinstance(raw, dict):
            r.error(("guests", key), f"needs `host` (one of {', '.join(names)}): the file describes several hosts")
        plain_guests[key] = raw
    if not hosts and (vxlans or guest_hosts):
        where = ("networks", vxlans[0][0], "vxlan") if vxlans else ("guests", guest_hosts[0][0], "host")
        r.error(where, "needs a [hosts] table naming every host and its underlay address")
    overlay = Overlay(tuple(hosts), tuple(vxlans), tuple(guest_hosts)) if hosts else None
    return plain_nets, plain_guests, overlay


def _unknown(name: str, names: list[str]) -> str:
    return f"unknown host {name!r} (the [hosts] table has {', '.join(names) or 'none'})"


def _hosts(r: Reader, raw) -> list[HostEntry]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        r.error(("hosts",), "must be a table of [hosts.NAME] tables")
        return []
    if len(raw) > MAX_HOSTS:
        r.error(("hosts",), f"at most {MAX_HOSTS} hosts")
        return []
    out, seen = [], {}
    for name, entry in raw.items():
        path = ("hosts", name)
        if not naming.OBJECT_NAME_RE.fullmatch(name):
            r.error(path, f"host name {name!r} must be 1-32 letters, digits, '_' or '-'")
            continue
        entry = r.table(entry, path, ("underlay",))
        addr = r.ipv4(entry, "underlay", path) if entry or isinstance(entry, dict) else None
        if addr is None:
            continue
        if addr in seen:
            r.error(path + ("underlay",), f"{addr} is already the underlay address of hosts.{seen[addr]}")
            continue
        if addr.is_unspecified or addr.is_multicast or addr.is_loopback:
            r.error(path + ("underlay",), f"{addr} cannot be a host's underlay address")
            continue
        seen[addr] = name
        out.append(HostEntry(name, addr))
    return out


def _vxlan(r: Reader, raw: dict, path: tuple, names: list[str]) -> Vxlan | None:
    table = raw.get("vxlan")
    if table is None:
        r.error(path + ("gateway_host",), "only a network with a [vxlan] table spans hosts")
        return None
    table = r.table(table, path + ("vxlan",), ("vni", "control", "port", "hosts"))
    vpath = path + ("vxlan",)
    vni = r.get(table, "vni", vpath, int)
    if vni is not None and not 1 <= vni <= 16777215:
        r.error(vpath + ("vni",), f"{vni} is outside 1-16777215")
        vni = None
    control = r.get(table, "control", vpath, str, "static")
    if control not in (None, *CONTROLS):
        r.error(vpath + ("control",), f"{control!r} must be static or evpn")
    port = r.get(table, "port", vpath, int, 4789)
    if port is not None and not 1 <= port <= 65535:
        r.error(vpath + ("port",), f"{port} is outside 1-65535")
    hosts = r.get(table, "hosts", vpath, list, names) or []
    bad = [h for h in hosts if not isinstance(h, str) or h not in names]
    if bad:
        r.error(vpath + ("hosts",), _unknown(str(bad[0]), names))
    elif len(set(hosts)) != len(hosts):
        r.error(vpath + ("hosts",), "names a host twice")
    gateway_host = r.get(raw, "gateway_host", path, str, None)
    if gateway_host is not None and gateway_host not in hosts:
        r.error(path + ("gateway_host",), _unknown(gateway_host, names) if gateway_host not in names
                else f"{gateway_host!r} is not one of the network's vxlan hosts ({', '.join(hosts)})")
    if vni is None or control not in CONTROLS or bad:
        return None
    return Vxlan(vni, control, port or 4789, tuple(hosts), gateway_host or (hosts[0] if hosts else None))


def check(r: Reader, overlay: Overlay | None, networks: list[Network], guests: list[Guest]) -> None:
    """What spans hosts: unique VNIs, stretched networks that kvmnet builds a bridge for, and
    every guest on a stretched network running on one of its hosts."""
    if overlay is None:
        return
    by_net = {n.name: n for n in networks}
    vnis: dict[int, str] = {}
    for name, vx in overlay.vxlans:
        path = ("networks", name, "vxlan")
        if vx.vni in vnis:
            r.error(path + ("vni",), f"{vx.vni} is already the VNI of networks.{vnis[vx.vni]}")
        vnis[vx.vni] = name
        net = by_net.get(name)
        if net is not None and net.mode not in VIRTUAL_MODES:
            r.error(path, f"a {net.mode} network cannot span hosts (nat, routed or isolated can)")
        if not vx.hosts:
            r.error(path + ("hosts",), "names no host")
    where = dict(overlay.guest_hosts)
    for guest in guests:
        host = where.get(guest.name)
        for i, nic in enumerate(guest.nics):
            vx = overlay.vxlan(nic.network)
            if vx is not None and host is not None and host not in vx.hosts:
                r.error(("guests", guest.name, "nics", i, "network"),
                        f"networks.{nic.network} does not span host {host} (its vxlan hosts: {', '.join(vx.hosts)})")


def underlay_of(overlay: Overlay, name: str) -> IPv4Address:
    return overlay.host(name).underlay
