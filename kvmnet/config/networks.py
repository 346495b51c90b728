"""[networks.NAME] tables -> model.Network: bridge settings, subnet, gateway, DHCP and DNS.
QEMU-only modes (user, socket) are read by qemu_modes.py."""

from __future__ import annotations

import os
import re
from ipaddress import IPv4Network, ip_address, ip_network

from .. import naming
from ..model import Dhcp, MODES, Network
from . import ipv6
from .attach import DIRECT_KEYS, bandwidth, direct_net
from .guests import mac_address
from .passt import KEYS as PASST_KEYS, passt_net
from .qemu_modes import socket_net, user_net
from .tomlread import MISSING, Reader, check_host_address, check_range, type_name

_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?", re.ASCII)

_COMMON = ("mode",)
_BRIDGE_KEYS = ("bridge", "stp", "forward_delay", "mtu")
_HELPER = ("allow_unprivileged",)  # qemu-bridge-helper's ACL (host/qemu_acl.py)
_ADDR_KEYS = ("mac", "subnet", "gateway", "dhcp", "domain", "dns_hosts", "tftp_root", "bootfile",
              "spoof_protection")
NETWORK_KEYS = {
    "nat": _COMMON + _BRIDGE_KEYS + _ADDR_KEYS + ("forwards",) + ipv6.KEYS["nat"] + _HELPER,
    "routed": _COMMON + _BRIDGE_KEYS + _ADDR_KEYS + ipv6.KEYS["routed"] + _HELPER,
    "isolated": _COMMON + _BRIDGE_KEYS + _ADDR_KEYS + ipv6.KEYS["isolated"] + _HELPER,
    "bridge": _COMMON + _BRIDGE_KEYS + ("uplink",) + _HELPER,
    "user": _COMMON + ("net", "host", "dns", "dhcpstart", "restrict", "hostname", "domainname",
                       "hostfwd", "guestfwd", "tftp", "bootfile", "smb", "ipv6", "ipv6-net", "ipv6-host", "ipv6-dns"),
    "socket": _COMMON + ("transport", "address", "port", "localaddr"),
    "vde": _COMMON + ("bridge",),
}
NETWORK_KEYS["direct"] = DIRECT_KEYS
NETWORK_KEYS["passt"] = PASST_KEYS
for _mode in ("nat", "routed", "isolated", "bridge"):  # config/attach.py reads it
    NETWORK_KEYS[_mode] += ("bandwidth",)


def network(r: Reader, name: str, raw, path: tuple) -> Network | None:
    """One network without its forwards (they name guests: forwards.py reads them later)."""
    if not naming.OBJECT_NAME_RE.fullmatch(name):
        r.error(path, f"network name {name!r} must be 1-32 letters, digits, '_' or '-'")
    if not isinstance(raw, dict):
        r.error(path, f"must be a table, not {type_name(raw)}")
        return None
    mode = r.get(raw, "mode", path, str)
    if mode not in MODES:
        if mode is not None:
            r.error(path + ("mode",), f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        _keys_of_any_mode(r, raw, path)  # a typo elsewhere is a problem of its own
        return None
    r.table(raw, path, NETWORK_KEYS[mode])
    if mode == "user":
        return Network(name, mode, user=user_net(r, raw, path))
    if mode == "socket":
        return socket_net(r, name, raw, path)
    if mode == "direct":
        return direct_net(r, name, raw, path)
    if mode == "vde":  # a vde_switch kvmnet runs; `bridge`: the kvmnet bridge it joins
        return Network(name, mode, vde_join=r.ifname(raw, "bridge", path, None))
    if mode == "passt":
        return passt_net(r, name, raw, path)
    fields = _bridge(r, raw, path)
    fields["allow_unprivileged"] = bool(r.get(raw, "allow_unprivileged", path, bool, False))
    if mode == "bridge":
        fields["uplink"] = r.ifname(raw, "uplink", path)
    else:
        fields.update(_addressing(r, raw, path, mode))
        fields.update(ipv6.network_fields(r, raw, path, mode))
        if fields["spoof_protection"] and fields["allow_unprivileged"]:
            # a tap a user attaches through qemu-bridge-helper is no guest's: nothing would filter it
            r.error(path + ("allow_unprivileged",), "cannot go with spoof_protection: taps users attach "
                    "through qemu-bridge-helper are no guest's, so nothing would check what they send")
    return Network(name, mode, bandwidth=bandwidth(r, raw, path), **fields)


def _keys_of_any_mode(r: Reader, raw: dict, path: tuple) -> None:
    known = {key for keys in NETWORK_KEYS.values() for key in keys}
    for key in raw:
        if key not in known:
            r.error(path + (key,), "unknown key (no network mode has it)")


def _bridge(r: Reader, raw: dict, path: tuple) -> dict:
    bridge = r.ifname(raw, "bridge", path)
    stp = r.get(raw, "stp", path, bool, True)
    delay = r.get(raw, "forward_delay", path, int, 0)
    if delay is not None and not 0 <= delay <= 30:
        r.error(path + ("forward_delay",), f"{delay} is outside 0-30 seconds")
    mtu = r.get(raw, "mtu", path, int, None)
    if mtu is not None and not 68 <= mtu <= 65535:
        r.error(path + ("mtu",), f"{mtu} is outside 68-65535")
    return {"bridge": bridge, "stp": bool(stp), "forward_delay": delay or 0, "mtu": mtu}


def _addressing(r: Reader, raw: dict, path: tuple, mode: str) -> dict:
    """What kvmnet's own subnets have: gateway, DHCP, DNS, PXE boot."""
    subnet_required = mode != "isolated" or "dhcp" in raw or "gateway" in raw
    subnet = _subnet(r, raw, path, required=subnet_required)
    gateway = r.ipv4(raw, "gateway", path, None)
    if subnet is not None:
        if gateway is None:
            gateway = subnet.network_address + 1
        else:
            check_host_address(r, path + ("gateway",), gateway, subnet)
    dhcp = _dhcp(r, raw.get("dhcp"), path + ("dhcp",), subnet) if "dhcp" in raw else None
    domain, dns_hosts = _dns(r, raw, path)
    mac = r.get(raw, "mac", path, str, None)
    fields = {"mac": mac_address(r, mac, path + ("mac",)) if mac is not None else None}
    for key in ("tftp_root", "bootfile"):
        value = r.get(raw, key, path, str, None)
        why = dnsmasq_value_problem(value) if value is not None else None
        if why is None and key == "tftp_root" and value is not None and not os.path.isabs(value):
            why = "must be an absolute path"
        if why:
            r.error(path + (key,), why)
        fields[key] = value
    fields.update(subnet=subnet, gateway=gateway if subnet else None, dhcp=dhcp, domain=domain,
                  dns_hosts=dns_hosts,
                  spoof_protection=bool(r.get(raw, "spoof_protection", path, bool, False)))
    return fields


# What dnsmasq's configuration file cannot carry in a value (proven with dnsmasq 2.90): a '#'
# after a blank starts a comment, '"' and '\\' are quote syntax, a comma splits arguments,
# blanks at either end are stripped; a leading tag:/net: is read as a DHCP tag, not a name.
_DNSMASQ_SPECIAL = '#"\\,'


def dnsmasq_value_problem(value: str) -> str | None:
    """Why `value` cannot be written into dnsmasq's configuration as it is, or None."""
    if not value:
        return "must not be empty"
    bad = sorted({c for c in value if c in _DNSMASQ_SPECIAL or not (c.isprintable() or c == " ")})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"must not contain {shown}: dnsmasq's configuration cannot carry #, \", \\, commas or control characters"
    if value != value.strip():
        return "must not start or end with a blank (dnsmasq strips them)"
    if value.startswith(("tag:", "net:")):
        return "must not start with tag: or net: (dnsmasq reads that as a DHCP tag)"
    return None


def _subnet(r: Reader, raw: dict, path: tuple, required: bool) -> IPv4Network | None:
    text = r.get(raw, "subnet", path, str, MISSING if required else None)
    if text is None:
        return None
    try:
        net = ip_network(text, strict=False)
    except ValueError:
        r.error(path + ("subnet",), f"{text!r} is not a subnet in CIDR form (like 192.168.122.0/24)")
        return None
    if not isinstance(net, IPv4Network):
        r.error(path + ("subnet",), f"{text} is IPv6; only IPv4 subnets are supported")
        return None
    if "/" not in text:
        r.error(path + ("subnet",), f"{text!r} has no prefix length (like {text}/24)")
        return None
    if net.network_address != ip_address(text.split("/")[0].strip()):
        r.error(path + ("subnet",), f"{text} has host bits set; did you mean {net}?")
        return None
    if net.prefixlen < 8 or net.prefixlen > 30:
        r.error(path + ("subnet",), f"/{net.prefixlen} is outside /8-/30 (a guest network needs a gateway and guests, and no more than a /8)")
        return None
    return net


def _dhcp(r: Reader, raw, path: tuple, subnet: IPv4Network | None) -> Dhcp | None:
    raw = r.table(raw, path, ("start", "end", "lease_time"))
    start, end = r.ipv4(raw, "start", path), r.ipv4(raw, "end", path)
    lease = r.lease_time(raw, path)
    if start is None or end is None or subnet is None:
        return None
    ok = check_range(r, path, start, end, subnet)
    return Dhcp(start, end, lease or "1h") if ok else None


def _dns_address(r: Reader, hosts: dict, host: str, path: tuple):
    """An A record's IPv4 or an AAAA record's IPv6 address (anywhere: DNS names what it likes)."""
    text = r.get(hosts, host, path, str, None)
    try:
        return ip_address(text) if text is not None else None
    except ValueError:
        r.error(path + (host,), f"{text!r} is not an IP address")
        return None


def _dns(r: Reader, raw: dict, path: tuple) -> tuple[str | None, tuple]:
    domain = r.get(raw, "domain", path, str, None)
    if domain is not None and (len(domain) > 253 or not _is_dns_name(domain)):
        r.error(path + ("domain",), f"{domain!r} is not a DNS domain name")
    dns_hosts = []
    hosts_raw = r.get(raw, "dns_hosts", path, dict, {})
    for host in hosts_raw or {}:
        if not _is_dns_name(host):
            r.error(path + ("dns_hosts", host), f"{host!r} is not a host name")
        ip = _dns_address(r, hosts_raw, host, path + ("dns_hosts",))
        if ip is not None:
            dns_hosts.append((host, ip))
    return domain, tuple(dns_hosts)


def _is_dns_name(name: str) -> bool:
    return all(_LABEL.fullmatch(label) for label in name.split("."))
