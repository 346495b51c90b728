"""TOML topology file -> model.Topology, or InputError listing every problem with file:line: key.

Pure: reads the file it is given and nothing else. Checks that need the host (routes, the
uplink's existence) live in hostcheck.py and run at plan time, before any change.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from ipaddress import IPv4Network, ip_address, ip_network

from .. import naming
from ..errors import InputError, Problem
from .qemu_modes import socket_net, user_net
from ..model import Dhcp, Forward, Guest, MODES, Network, Nic, Topology, VIRTUAL_MODES
from .tomlpos import format_path, key_lines, line_of
from .tomlread import MISSING, Reader, check_host_address, type_name

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FORWARDS = 20000  # in all; each is one map element, but a file this big is a mistake
MAX_GUESTS = 4096
MAX_NETWORKS = 256
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?", re.ASCII)
MAX_NICS = 64  # per guest: more than a PCI bus holds, and derived tap names stay within 15 bytes
NIC_MODELS = ("virtio-net-pci", "virtio-net", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet",
              "vmxnet3", "i82559er", "usb-net")


# ---------------------------------------------------------------- networks

_COMMON = ("mode",)
_BRIDGE_KEYS = ("bridge", "stp", "forward_delay", "mtu")
_ADDR_KEYS = ("subnet", "gateway", "dhcp", "domain", "dns_hosts", "tftp_root", "bootfile",
              "spoof_protection")
NETWORK_KEYS = {
    "nat": _COMMON + _BRIDGE_KEYS + _ADDR_KEYS + ("forwards",),
    "routed": _COMMON + _BRIDGE_KEYS + _ADDR_KEYS,
    "isolated": _COMMON + _BRIDGE_KEYS + _ADDR_KEYS,
    "bridge": _COMMON + _BRIDGE_KEYS + ("uplink",),
    "user": _COMMON + ("net", "host", "dns", "dhcpstart", "restrict", "hostname", "domainname",
                       "hostfwd", "guestfwd", "tftp", "bootfile", "smb", "ipv6"),
    "socket": _COMMON + ("transport", "address", "port", "localaddr"),
}


def _network(r: Reader, name: str, raw, path: tuple) -> Network | None:
    if not naming.OBJECT_NAME_RE.fullmatch(name):
        r.error(path, f"network name {name!r} must be 1-32 letters, digits, '_' or '-'")
    if not isinstance(raw, dict):
        r.error(path, f"must be a table, not {type_name(raw)}")
        return None
    mode = r.get(raw, "mode", path, str)
    if mode is None:
        return None
    if mode not in MODES:
        r.error(path + ("mode",), f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        return None
    r.table(raw, path, NETWORK_KEYS[mode])
    if mode == "user":
        return Network(name, mode, user=user_net(r, raw, path))
    if mode == "socket":
        return socket_net(r, name, raw, path)
    fields: dict = {"bridge": r.ifname(raw, "bridge", path)}
    stp = r.get(raw, "stp", path, bool, True)
    delay = r.get(raw, "forward_delay", path, int, 0)
    if delay is not None and not 0 <= delay <= 30:
        r.error(path + ("forward_delay",), f"{delay} is outside 0-30 seconds")
    mtu = r.get(raw, "mtu", path, int, None)
    if mtu is not None and not 68 <= mtu <= 65535:
        r.error(path + ("mtu",), f"{mtu} is outside 68-65535")
    fields.update(stp=bool(stp), forward_delay=delay or 0, mtu=mtu)
    if mode == "bridge":
        fields["uplink"] = r.ifname(raw, "uplink", path)
        return Network(name, mode, **fields)
    subnet_required = mode != "isolated" or "dhcp" in raw or "gateway" in raw
    subnet = _subnet(r, raw, path, required=subnet_required)
    gateway = r.ipv4(raw, "gateway", path, None)
    if subnet is not None:
        if gateway is None:
            gateway = subnet.network_address + 1
        else:
            check_host_address(r, path + ("gateway",), gateway, subnet)
    dhcp = _dhcp(r, raw.get("dhcp"), path + ("dhcp",), subnet) if "dhcp" in raw else None
    domain = r.get(raw, "domain", path, str, None)
    if domain is not None and (len(domain) > 253 or not all(_LABEL.fullmatch(l) for l in domain.split("."))):
        r.error(path + ("domain",), f"{domain!r} is not a DNS domain name")
    dns_hosts = []
    hosts_raw = r.get(raw, "dns_hosts", path, dict, {})
    for host, addr in (hosts_raw or {}).items():
        hpath = path + ("dns_hosts", host)
        if not all(_LABEL.fullmatch(l) for l in host.split(".")):
            r.error(hpath, f"{host!r} is not a host name")
        ip = r.ipv4(hosts_raw, host, path + ("dns_hosts",))
        if ip is not None:
            dns_hosts.append((host, ip))
    for key in ("tftp_root", "bootfile"):
        value = r.get(raw, key, path, str, None)
        if value is not None and ("\n" in value or "," in value):
            r.error(path + (key,), "must not contain commas or newlines")
        fields[key] = value
    if fields["tftp_root"] is not None and not os.path.isabs(fields["tftp_root"]):
        r.error(path + ("tftp_root",), "must be an absolute path")
    fields.update(subnet=subnet, gateway=gateway if subnet else None, dhcp=dhcp, domain=domain,
                  dns_hosts=tuple(dns_hosts),
                  spoof_protection=bool(r.get(raw, "spoof_protection", path, bool, False)))
    return Network(name, mode, **fields)


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
    lease = r.get(raw, "lease_time", path, str, "1h")
    if lease is not None and not re.fullmatch(r"\d+[smhdw]?|infinite", lease, re.ASCII):
        r.error(path + ("lease_time",), f"{lease!r} is not a lease time (like 3600, 1h, 2d, infinite)")
    if start is None or end is None or subnet is None:
        return None
    ok = check_host_address(r, path + ("start",), start, subnet)
    ok = check_host_address(r, path + ("end",), end, subnet) and ok
    if ok and start > end:
        r.error(path + ("end",), f"range {start}-{end} is reversed")
        return None
    return Dhcp(start, end, lease or "1h") if ok else None


def _forwards(r: Reader, net: Network, raw_list, path: tuple, guests_by_name: dict) -> tuple:
    out = []
    for i, raw in enumerate(r.array(raw_list, path)):
        p = path + (i,)
        raw = r.table(raw, p, ("proto", "host_port", "host_addr", "guest", "guest_port"))
        proto = r.proto(raw, p)
        host = r.port(raw["host_port"], p + ("host_port",)) if "host_port" in raw else r.get(raw, "host_port", p, int)
        guest_ports = r.port(raw["guest_port"], p + ("guest_port",)) if "guest_port" in raw else host
        host_addr = r.ipv4(raw, "host_addr", p, None)
        target = r.get(raw, "guest", p, str)
        if host and guest_ports and host[1] - host[0] != guest_ports[1] - guest_ports[0]:
            r.error(p + ("guest_port",), f"range {guest_ports[0]}-{guest_ports[1]} is not the same size as host_port {host[0]}-{host[1]}")
            guest_ports = None
        guest_ip, guest_name = _forward_target(r, net, target, p + ("guest",), guests_by_name)
        if None not in (proto, host, guest_ports, guest_ip):
            out.append(Forward(proto, host, guest_ip, guest_ports, guest_name, host_addr, i))
    return tuple(out)


def _forward_target(r, net: Network, target, path, guests_by_name):
    if target is None:
        return None, None
    try:
        ip = ip_address(target)
    except ValueError:
        ip = None
    if ip is not None:
        if net.subnet is not None and check_host_address(r, path, ip, net.subnet):
            if ip == net.gateway:
                r.error(path, f"{ip} is the gateway (the host itself), not a guest")
                return None, None
            return ip, None
        return None, None
    guest = guests_by_name.get(target)
    if guest is None:
        r.error(path, f"unknown guest {target!r}")
        return None, None
    ips = [n.ip for n in guest.nics if n.network == net.name and n.ip is not None]
    if not ips:
        r.error(path, f"guest {target!r} has no static ip on network {net.name!r}; a port forward needs one (set guests.{target}.nics[].ip)")
        return None, None
    return ips[0], target


# ---------------------------------------------------------------- guests

def _guest(r: Reader, topology: str, name: str, raw, path: tuple) -> Guest | None:
    if not naming.OBJECT_NAME_RE.fullmatch(name):
        r.error(path, f"guest name {name!r} must be 1-32 letters, digits, '_' or '-'")
        return None
    raw = r.table(raw, path, ("nics", "memory", "cpus", "kernel", "initrd", "append", "disk", "qemu_args", "queues"))
    extra = {}
    for key, lo, hi in (("memory", 16, 1 << 20), ("cpus", 1, 1024), ("queues", 1, 64)):
        value = r.get(raw, key, path, int, None)
        if value is not None and not lo <= value <= hi:
            r.error(path + (key,), f"{value} is outside {lo}-{hi}")
        elif value is not None:
            extra[key] = value
    for key in ("kernel", "initrd", "append", "disk"):
        value = r.get(raw, key, path, str, None)
        if value is not None:
            extra[key] = value
    args = r.get(raw, "qemu_args", path, list, [])
    if args and not all(isinstance(a, str) for a in args):
        r.error(path + ("qemu_args",), "must be an array of strings")
    elif args:
        extra["qemu_args"] = tuple(args)
    nics_raw = r.get(raw, "nics", path, list, [])
    if nics_raw and len(nics_raw) > MAX_NICS:
        r.error(path + ("nics",), f"{len(nics_raw)} NICs; a guest has at most {MAX_NICS}")
        nics_raw = []
    nics = []
    for i, nic in enumerate(nics_raw or []):
        p = path + ("nics", i)
        nic = r.table(nic, p, ("network", "mac", "ip", "model", "tap"))
        network = r.get(nic, "network", p, str)
        mac = r.get(nic, "mac", p, str, None)
        if mac is not None:
            mac = _mac(r, mac, p + ("mac",))
        ip = r.ipv4(nic, "ip", p, None)
        model = r.get(nic, "model", p, str, "virtio-net-pci")
        if model is not None and model not in NIC_MODELS:
            r.error(p + ("model",), f"unknown NIC model {model!r} (one of {', '.join(NIC_MODELS)})")
        tap = r.ifname(nic, "tap", p, None)
        if mac is None and "mac" not in nic:
            r.derived_macs.add((name, i))
        if network is not None:
            nics.append(Nic(network, mac or naming.guest_mac(topology, name, i), ip,
                            model or "virtio-net-pci", tap))
    return Guest(name, tuple(nics), **extra)


def _mac(r: Reader, text: str, path: tuple) -> str | None:
    mac = text.strip().lower().replace("-", ":")
    if not _MAC_RE.fullmatch(mac):
        r.error(path, f"{text!r} is not a MAC address (like 52:54:00:12:34:56)")
        return None
    if int(mac[:2], 16) & 1:
        r.error(path, f"{text} is a multicast MAC; a NIC needs a unicast one")
        return None
    if mac == "00:00:00:00:00:00":
        r.error(path, "00:00:00:00:00:00 is not a usable MAC")
        return None
    return mac


# ---------------------------------------------------------------- cross-checks

def _cross_check(r: Reader, topology: str, networks: list[Network], guests: list[Guest]) -> list[Guest]:
    by_name = {n.name: n for n in networks}
    bridges: dict[str, str] = {}
    for net in networks:
        for key in ("bridge", "uplink"):
            ifname = getattr(net, key)
            if ifname is None:
                continue
            if ifname in bridges:
                r.error(("networks", net.name, key), f"{ifname} is already used by networks.{bridges[ifname]}")
            bridges[ifname] = net.name
    subnets = [(n, n.subnet) for n in networks if n.subnet is not None]
    for i, (a, sa) in enumerate(subnets):
        for b, sb in subnets[i + 1:]:
            if sa.overlaps(sb):
                r.error(("networks", b.name, "subnet"), f"{sb} overlaps networks.{a.name}.subnet {sa}")
    socket_members: dict[str, list[str]] = {}
    macs: dict[str, str] = {}
    ips: dict[tuple, str] = {}
    taps: dict[str, str] = {}
    fixed: list[Guest] = []
    for guest in guests:
        nics = []
        for i, nic in enumerate(guest.nics):
            p = ("guests", guest.name, "nics", i)
            where = f"guests.{guest.name}.nics[{i}]"
            net = by_name.get(nic.network)
            if net is None:
                r.error(p + ("network",), f"unknown network {nic.network!r}")
                continue
            salt = 0
            while nic.mac in macs and (guest.name, i) in r.derived_macs:
                salt += 1  # 24 hash bits collide now and then: derive again, deterministically
                nic = replace(nic, mac=naming.guest_mac(topology, guest.name, i, salt))
            if nic.mac in macs:
                r.error(p + ("mac",), f"{nic.mac} is also the MAC of {macs[nic.mac]}")
            macs[nic.mac] = where
            if nic.ip is not None:
                if net.subnet is None or net.mode not in VIRTUAL_MODES:
                    r.error(p + ("ip",), f"a static ip needs a network with a subnet and DHCP ({nic.network} is {net.mode})")
                elif check_host_address(r, p + ("ip",), nic.ip, net.subnet):
                    if nic.ip == net.gateway:
                        r.error(p + ("ip",), f"{nic.ip} is the gateway of networks.{net.name}")
                    elif (net.name, nic.ip) in ips:
                        r.error(p + ("ip",), f"{nic.ip} is also the ip of {ips[(net.name, nic.ip)]}")
                    ips[(net.name, nic.ip)] = where
            if net.mode == "socket":
                if guest.name in socket_members.get(net.name, []):
                    r.error(p + ("network",), f"guest {guest.name} already has a NIC on socket network {net.name}")
                else:
                    socket_members.setdefault(net.name, []).append(guest.name)
            if net.bridged:
                tap = nic.tap or naming.tap_name(topology, guest.name, i)
                if tap in taps or tap in bridges:
                    r.error(p + ("tap",), f"tap {tap} is also used by {taps.get(tap) or 'a network'}")
                taps[tap] = where
                nic = replace(nic, tap=tap)
            elif nic.tap is not None:
                r.error(p + ("tap",), f"only NICs on bridged networks have taps ({nic.network} is {net.mode})")
            nics.append(nic)
        fixed.append(replace(guest, nics=tuple(nics)))
    bound: dict[tuple, str] = {}
    for net in networks:
        if net.mode == "socket" and net.socket.transport in ("tcp", "udp"):
            s = net.socket
            for port in (s.port, s.port + 1) if s.transport == "udp" else (s.port,):
                key = (s.transport if s.transport == "tcp" else "udp", str(s.address), port)
                if key in bound:
                    r.error(("networks", net.name, "port"), f"{key[0]} {s.address}:{port} is also used by networks.{bound[key]}")
                bound[key] = net.name
    for name, members in socket_members.items():
        net = by_name[name]
        if net.socket.transport in ("tcp", "udp") and len(members) > 2:
            r.error(("networks", name, "transport"), f"a {net.socket.transport} link joins exactly two guests, but {len(members)} use it ({', '.join(members)}); use transport = \"mcast\"")
    return fixed


def load_text(text: str, file: str, topology_name: str | None = None) -> Topology:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError([Problem(file, None, "", f"not valid Unicode text ({exc.reason} at {exc.start})")]) from None
    r = Reader(file, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise InputError([Problem(file, int(line.group(1)) if line else None, "", f"TOML syntax error: {exc}")]) from None
    r.table(data, (), ("name", "firewall", "networks", "guests"))
    name = r.get(data, "name", (), str, None)
    if name is None:
        name = topology_name or naming.topology_name_from_path(file)
    if not re.fullmatch(r"[A-Za-z0-9_]{1,24}", name, re.ASCII):
        r.error(("name",), f"topology name {name!r} must be 1-24 letters, digits or '_' (set name = \"...\" in the file)")
    firewall = r.get(data, "firewall", (), str, "auto")
    if firewall not in (None, "auto", "nftables", "iptables"):
        r.error(("firewall",), f"{firewall!r} must be auto, nftables or iptables")
    nets_raw = r.get(data, "networks", (), dict, {}) or {}
    guests_raw = r.get(data, "guests", (), dict, {}) or {}
    if len(nets_raw) > MAX_NETWORKS or len(guests_raw) > MAX_GUESTS:
        raise InputError([Problem(file, None, "", f"too large: at most {MAX_NETWORKS} networks and {MAX_GUESTS} guests")])
    networks = [n for name_, raw in nets_raw.items()
                if (n := _network(r, name_, raw, ("networks", name_))) is not None]
    guests = [g for name_, raw in guests_raw.items()
              if (g := _guest(r, name, name_, raw, ("guests", name_))) is not None]
    guests = _cross_check(r, name, networks, guests)
    guests_by_name = {g.name: g for g in guests}
    total = 0
    ports: list[tuple[str, int, int, str, tuple]] = []  # proto, low, high, where, key path
    for i, net in enumerate(networks):
        raw = nets_raw[net.name]
        if net.mode != "nat" or "forwards" not in raw:
            continue
        total += len(raw["forwards"]) if isinstance(raw["forwards"], list) else 0
        if total > MAX_FORWARDS:
            raise InputError([Problem(file, line_of(r.lines, ("networks", net.name, "forwards")), f"networks.{net.name}.forwards", f"too many port forwards (at most {MAX_FORWARDS} in all)")])
        fwds = _forwards(r, net, raw["forwards"], ("networks", net.name, "forwards"), guests_by_name)
        ports += [(f.proto, *f.host_ports, f"networks.{net.name}.forwards[{f.index}]",
                   ("networks", net.name, "forwards", f.index, "host_port")) for f in fwds]
        networks[i] = replace(net, forwards=fwds)
    _check_port_overlaps(r, ports)
    if r.problems:
        raise InputError(r.problems)
    return Topology(name, file, tuple(networks), tuple(guests), firewall or "auto")


def _check_port_overlaps(r: Reader, ports: list) -> None:
    """Host port ranges may not overlap per protocol: a sort and one sweep, not all pairs
    (20000 forwards would take seconds)."""
    by_order = sorted(ports, key=lambda p: (p[0], p[1], p[4]))
    reach: dict[str, tuple[int, str]] = {}  # proto -> (highest port so far, where)
    flagged = []
    for proto, lo, hi, where, path in by_order:
        top = reach.get(proto)
        if top and lo <= top[0]:
            flagged.append((path, f"{proto} host port {_ports((lo, hi))} overlaps {top[1]}"))
        if not top or hi > top[0]:
            reach[proto] = (hi, where)
    for path, reason in sorted(flagged, key=lambda f: f[0]):
        r.error(path, reason)


def _ports(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}-{p[1]}"


def load(path: str) -> Topology:
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise InputError([Problem(path, None, "", f"file is {size} bytes; topology files are at most {MAX_FILE_BYTES}")])
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError([Problem(path, None, "", exc.strerror or str(exc))]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(path, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    return load_text(text, path)


def locate(file: str, items: list[tuple[tuple, str]]) -> list[Problem]:
    """Problems for (key path, reason) pairs found after loading (e.g. host conflicts)."""
    try:
        with open(file, encoding="utf-8") as f:
            lines = key_lines(f.read())
    except OSError:
        lines = {}
    return [Problem(file, line_of(lines, path), format_path(path), reason) for path, reason in items]


def file_warnings(path: str) -> list[str]:
    """Things about the file itself an admin should hear about before applying it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return []
    if mode & 0o002:
        return [f"{path}: warning: the file is world-writable; anyone on this host can change what kvmnet applies as root"]
    return []
