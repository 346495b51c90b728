"""firewalld, over D-Bus with `busctl`: is it running, does kvmnet's zone exist, which zone each
kvmnet bridge is in; create and delete kvmnet's zones (each with its policy from any zone into
it), bind and unbind bridges.

Why busctl and not firewall-cmd: firewall-cmd is a Python program that costs ~170 ms a call
here, busctl ~8 ms (C, sd-bus), and every apply and every watch re-plan reads the bindings;
busctl ships with systemd, which every firewalld host runs, and honours DBUS_SYSTEM_BUS_ADDRESS
like firewall-cmd (the tests give it a private bus). dbus-python would be a new dependency.

Bindings are runtime only, as libvirt makes them: a firewalld reload drops them, and
`kvmnet watch` re-applies them on firewalld's `Reloaded` signal. A zone is permanent (so a
reload keeps it): created with the settings below, then loaded with one reload, only when
missing; that reload's dropped bindings (everyone's, not only kvmnet's) are bound again at once.
"""

from __future__ import annotations

import os
import subprocess

from ..errors import HostError
from . import procs

FIREWALLD = "org.fedoraproject.FirewallD1"

_PATH, _CONFIG = "/org/fedoraproject/FirewallD1", "/org/fedoraproject/FirewallD1/config"
# what every kvmnet zone is, after libvirt's `libvirt` zone: forwarding accepted (target
# ACCEPT), ICMP and the listed services to the host, anything else to the host rejected
_RULES = ['rule priority="32767" reject']
_PROTOCOLS = ["icmp", "ipv6-icmp"]
# and a policy from any zone into it, ACCEPT (libvirt's libvirt-routed-in): a zone's target
# covers what comes from its bridges only, and what the LAN sends into a routed network met the
# LAN's zone (`drop`) instead. kvmnet's own table then decides, as without firewalld (a routed
# subnet in, a NAT network replies and forwarded ports only, an isolated one nothing).


def _policy(zone: str) -> str:
    return f"{zone}-in"


def _kept(zones: list[str], policies: list[str]) -> list[str]:
    """The zones, a kvmnet zone only with its policy (one an earlier kvmnet made has none: it is
    made again, with it)."""
    return [z for z in zones if not z.startswith("kvmnet") or _policy(z) in policies]


def system_bus_exists() -> bool:
    """A system bus to ask (DBUS_SYSTEM_BUS_ADDRESS, else the standard socket): without one,
    firewalld is not running, and no process is started to find that out."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
    if address.startswith("unix:path="):
        return os.path.exists(address[len("unix:path="):].split(",")[0])
    return bool(address) or os.path.exists("/run/dbus/system_bus_socket")


def _busctl(path: str, interface: str, method: str, signature: str = "", *args: str, dest: str = FIREWALLD) -> str:
    argv = ["busctl", "--system", "call", dest, path, interface, method] + ([signature, *args] if signature else [])
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise HostError(f"firewalld: {interface.rsplit('.', 1)[-1]}.{method}: {res.stderr.strip() or 'failed'}")
    return res.stdout.strip()


def _strings(reply: str) -> list[str]:
    """busctl's `as N "a" "b"` or `s "a"` reply as a list of strings. busctl writes each string
    C-escaped (systemd's cescape: backslash escapes for quotes, backslash and control characters,
    octal escapes for any byte from 127): decoded here, so a name with a quote or an accent is
    itself again, not the escaped text."""
    import codecs
    import re

    return [codecs.escape_decode(quoted.encode())[0].decode("utf-8", "surrogateescape")
            for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"', reply)]


def running() -> bool:
    if not system_bus_exists() or not procs.which("busctl"):
        return False
    try:
        reply = _busctl("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", FIREWALLD,
                        dest="org.freedesktop.DBus")
    except HostError:
        return False  # no bus to talk to
    return reply == "b true"


def observe(bridges: list[str]) -> dict:
    """{} when firewalld is not running; else {"running": True, "zones": runtime zone names,
    "permanent": permanent zone names, "unpolicied": kvmnet's zones without their policy (an
    earlier kvmnet's), "bindings": {bridge: its zone, "" if none}}."""
    if not running():
        return {}
    zones = _strings(_busctl(_PATH, f"{FIREWALLD}.zone", "getZones"))
    permanent = _strings(_busctl(_CONFIG, f"{FIREWALLD}.config", "getZoneNames"))
    mine = [z for z in zones if z.startswith("kvmnet")]
    policies = _runtime_policies() if mine else []  # (one more call, only where kvmnet has a zone)
    bindings = {br: _zone_of(br) for br in bridges}
    return {"running": True, "zones": zones, "permanent": permanent, "bindings": bindings,
            "unpolicied": [z for z in mine if _policy(z) not in policies]}


def _add_zone(zone: str, services: list[str]) -> None:
    permanent = _strings(_busctl(_CONFIG, f"{FIREWALLD}.config", "getZoneNames"))
    if zone not in permanent:
        _busctl(_CONFIG, f"{FIREWALLD}.config", "addZone2", "sa{sv}", *_settings_args(zone, [
            ("short", "s", [zone]), ("description", "s", ["kvmnet's bridges (created by kvmnet)"]),
            ("target", "s", ["ACCEPT"]), ("services", "as", [str(len(services)), *services]),
            ("protocols", "as", [str(len(_PROTOCOLS)), *_PROTOCOLS]),
            ("rules_str", "as", [str(len(_RULES)), *_RULES])]))
    if _policy(zone) not in _permanent_policies():
        _busctl(_CONFIG, f"{FIREWALLD}.config", "addPolicy", "sa{sv}", *_settings_args(_policy(zone), [
            ("short", "s", [_policy(zone)]), ("description", "s", [f"into {zone} (created by kvmnet)"]),
            ("ingress_zones", "as", ["1", "ANY"]), ("egress_zones", "as", ["1", zone]),
            ("target", "s", ["ACCEPT"])]))
    if zone not in _kept(_strings(_busctl(_PATH, f"{FIREWALLD}.zone", "getZones")), _runtime_policies()):
        bound = _interfaces()[1]
        _busctl(_PATH, FIREWALLD, "reload")  # the only way firewalld loads a new permanent zone
        _restore(bound)


def _settings_args(name: str, settings: list[tuple[str, str, list[str]]]) -> list[str]:
    """busctl's words for an `sa{sv}` argument: the name, then each (key, signature, values)."""
    return [name, str(len(settings))] + [w for key, sig, vals in settings for w in (key, sig, *vals)]


def _runtime_policies() -> list[str]:
    return _strings(_busctl(_PATH, f"{FIREWALLD}.policy", "getPolicies"))


def _permanent_policies() -> list[str]:
    return _strings(_busctl(_CONFIG, f"{FIREWALLD}.config", "getPolicyNames"))


def _interfaces() -> tuple[set[str], dict[str, str]]:
    """(the runtime zones, {interface: its zone} for every interface bound to one now). One
    getInterfaces per zone (a dozen): getActiveZones' a{sa{sas}} needs busctl --json (systemd 240)."""
    zones = _strings(_busctl(_PATH, f"{FIREWALLD}.zone", "getZones"))
    return set(zones), {iface: zone for zone in zones
                        for iface in _strings(_busctl(_PATH, f"{FIREWALLD}.zone", "getInterfaces", "s", zone))}


def _restore(bound: dict[str, str]) -> None:
    """Put back the bindings a reload kvmnet made dropped. With firewalld's default
    FlushAllOnReload=yes a reload unbinds every runtime-bound interface on the host: another
    topology's bridges, libvirt's, an admin's `--zone=trusted --change-interface`. Not asked for
    by anyone, so not let happen: each goes back to the zone it was in, unless that zone is gone
    after the reload (deleted from the permanent config): what firewalld's own reload does with
    FlushAllOnReload=no. One that cannot be put back fails the step."""
    zones, now = _interfaces()
    lost = []
    for iface, zone in sorted(bound.items()):
        if now.get(iface) == zone or zone not in zones:
            continue
        try:
            _busctl(_PATH, f"{FIREWALLD}.zone", "changeZoneOfInterface", "ss", zone, iface)
        except HostError as exc:
            if _zone_of(iface) != zone:  # (or someone else, NetworkManager, libvirt, put it back first)
                lost.append(f"{iface} to {zone} ({exc})")
    if lost:
        raise HostError(f"firewalld: a reload to load kvmnet's zone unbound interfaces it could not bind again: "
                        f"{'; '.join(lost)}")


def _zone_of(iface: str) -> str:
    return _strings(_busctl(_PATH, f"{FIREWALLD}.zone", "getZoneOfInterface", "s", iface))[0]


def _delete_zone(zone: str) -> None:
    """The permanent zone; the runtime copy goes at firewalld's next reload (kvmnet does not
    reload on destroy: that would drop everyone's runtime bindings for nothing). Its policy first:
    a permanent policy naming a zone that is gone makes firewalld's next reload fail."""
    if _policy(zone) in _permanent_policies():
        path = _busctl(_CONFIG, f"{FIREWALLD}.config", "getPolicyByName", "s", _policy(zone)).split(None, 1)[1].strip('"')
        _busctl(path, f"{FIREWALLD}.config.policy", "remove")
    if zone in _strings(_busctl(_CONFIG, f"{FIREWALLD}.config", "getZoneNames")):
        path = _busctl(_CONFIG, f"{FIREWALLD}.config", "getZoneByName", "s", zone).split(None, 1)[1].strip('"')
        _busctl(path, f"{FIREWALLD}.config.zone", "remove")


def run(step) -> None:
    """firewalld.zone.add / zone.del / bind / unbind. With firewalld stopped, the undo ops have
    nothing to do (its runtime bindings went with it) and the others fail."""
    a = step.args
    if not running():
        if step.op in ("firewalld.unbind", "firewalld.zone.del"):
            return
        raise HostError(f"firewalld: not running ({step.op})")
    if step.op == "firewalld.zone.add":
        _add_zone(a["zone"], list(a["services"]))
    elif step.op == "firewalld.zone.del":
        _delete_zone(a["zone"])
    elif step.op == "firewalld.bind":  # into our zone, unless it is in one already (the admin's)
        if not _zone_of(a["bridge"]):
            _busctl(_PATH, f"{FIREWALLD}.zone", "changeZoneOfInterface", "ss", a["zone"], a["bridge"])
    elif step.op == "firewalld.unbind":
        if _zone_of(a["bridge"]) == a["zone"]:
            _busctl(_PATH, f"{FIREWALLD}.zone", "removeInterface", "ss", a["zone"], a["bridge"])
    else:
        raise ValueError(f"unknown step {step.op}")
