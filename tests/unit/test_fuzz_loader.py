"""Fuzzing the topology loader with Hypothesis.

Property: config.load_text(text, "fuzz.toml") returns a Topology or raises InputError; any
other exception is a loader crash. Two generators:

- structured: random documents shaped like topologies (networks of random modes with keys of
  the right and of wrong types, guests with random NICs, forwards with random ports and ranges),
  written out as TOML in three styles (table headers, inline tables, a mix);
- raw: byte flips, byte insertions, line deletions, duplications and swaps, and truncations of
  tests/data/topologies/nat-lab.toml and topologies/*.toml.

Every accepted Topology must be self-consistent (every NIC's network exists; taps are valid
interface names of at most 15 bytes and unique; MACs are unique unicast addresses; addresses lie
in their subnets; forwards do not overlap ...), and every InputError must name fuzz.toml with a
line inside the text. Examples are derandomized (the same in every run and in CI); the number
tried and the crashes found are printed (`pytest -s`) and in the module's final summary line.
"""

from __future__ import annotations

import datetime
import re
import time
import tomllib
from collections import Counter
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmnet import config, naming
from kvmnet.config import NETWORK_KEYS, NIC_MODELS
from kvmnet.errors import InputError
from kvmnet.model import BRIDGED_MODES, Topology

ROOT = Path(__file__).resolve().parents[2]
FILE = "fuzz.toml"
SEEDS = [p.read_bytes() for p in [ROOT / "tests" / "data" / "topologies" / "nat-lab.toml",
                                  *sorted((ROOT / "topologies").glob("*.toml"))]]

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])
STATS: dict[str, Counter] = {}


# ------------------------------------------------------------------ the property

def run_loader(text: str, kind: str, structured: bool = False) -> Topology | None:
    stats = STATS.setdefault(kind, Counter())
    stats["examples"] += 1
    try:
        topo = config.load_text(text, FILE)
    except InputError as exc:
        stats["rejected"] += 1
        check_problems(exc, text, structured)
        return None
    except Exception:
        stats["crashes"] += 1
        raise
    stats["accepted"] += 1
    check_topology(topo)
    return topo


def check_problems(exc: InputError, text: str, structured: bool) -> None:
    assert exc.problems, "InputError without problems"
    # at most one past the last newline; str.splitlines() also counts U+2028, U+0085 ..., which
    # tomlpos does (a known bug: tests/data/bad/line-number-after-unicode-line-separator.toml)
    n_lines = max(text.count("\n"), len(text.splitlines())) + 1
    for p in exc.problems:
        assert p.file == FILE, p
        assert isinstance(p.reason, str) and p.reason, p
        assert p.line is None or 1 <= p.line <= n_lines, f"line {p.line} of a {n_lines}-line text: {p}"
        if structured:
            assert "TOML syntax error" not in p.reason, f"the generator wrote bad TOML:\n{text}\n{p}"
    assert str(exc)


def check_topology(topo: Topology) -> None:
    nets = {n.name: n for n in topo.networks}
    assert len(nets) == len(topo.networks)
    assert re.fullmatch(r"[A-Za-z0-9_]{1,24}", topo.name), topo.name
    assert topo.firewall in ("auto", "nftables", "iptables")
    ifnames: dict[str, str] = {}
    for net in topo.networks:
        if net.bridged:
            for key in ("bridge", "uplink") if net.mode == "bridge" else ("bridge",):
                name = getattr(net, key)
                assert name is not None and naming.ifname_problem(name) is None, (net.name, key, name)
                assert name not in ifnames, f"{name} used by {ifnames[name]} and {net.name}"
                ifnames[name] = net.name
        if net.mode in ("nat", "routed") or net.subnet is not None:
            sub = net.subnet
            assert isinstance(sub, IPv4Network) and 8 <= sub.prefixlen <= 30, net
            assert net.gateway in sub and net.gateway not in (sub.network_address, sub.broadcast_address), net
            if net.dhcp:
                assert net.dhcp.start in sub and net.dhcp.end in sub and net.dhcp.start <= net.dhcp.end, net
        if net.mode == "user":
            u = net.user
            assert u is not None and u.host != u.dns
            assert all(a in u.net for a in (u.host, u.dns, u.dhcpstart)), u
            assert len({(f.proto, f.host_addr, f.host_port) for f in u.hostfwd}) == len(u.hostfwd)
            assert all(1 <= p <= 65535 for f in u.hostfwd for p in (f.host_port, f.guest_port))
            assert all(1 <= g.server_port <= 65535 and "," not in g.target for g in u.guestfwd)
        if net.mode == "socket":
            s = net.socket
            assert s is not None and 1 <= s.port <= 65535 and s.transport in ("tcp", "udp", "mcast")
            assert s.transport != "mcast" or s.address.is_multicast
        for f in net.forwards:
            assert net.mode in ("nat", "passt") and f.proto in ("tcp", "udp")
            assert 1 <= f.host_ports[0] <= f.host_ports[1] <= 65535, f
            assert 1 <= f.guest_ports[0] <= f.guest_ports[1] <= 65535, f
            assert f.host_ports[1] - f.host_ports[0] == f.guest_ports[1] - f.guest_ports[0], f
            if net.mode == "passt":  # the guest's own passt forwards it: a guest on the network
                assert f.guest_ip is None and any(n.network == net.name for n in topo.guest(f.guest).nics), f
            else:
                assert f.guest_ip in net.subnet, f
    subnets = [n.subnet for n in topo.networks if n.subnet is not None]
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:]), subnets
    ports = sorted((f.proto, *f.host_ports) for n in topo.networks for f in n.forwards)
    assert all(a[0] != b[0] or a[2] < b[1] for a, b in zip(ports, ports[1:])), ports
    macs, taps, ips = set(), set(), set()
    for guest in topo.guests:
        assert 16 <= guest.memory <= 1 << 20 and 1 <= guest.cpus <= 1024
        for nic in guest.nics:
            net = nets.get(nic.network)
            assert net is not None, f"{guest.name}: NIC on unknown network {nic.network!r}"
            assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", nic.mac), nic.mac
            assert not int(nic.mac[:2], 16) & 1 and nic.mac != "00:00:00:00:00:00", nic.mac
            assert nic.mac not in macs, f"duplicate MAC {nic.mac}"
            macs.add(nic.mac)
            assert nic.model in NIC_MODELS
            if net.bridged:
                assert nic.tap is not None and len(nic.tap.encode()) <= naming.IFNAMSIZ, nic.tap
                assert naming.ifname_problem(nic.tap) is None, nic.tap
                assert nic.tap not in taps and nic.tap not in ifnames, f"duplicate tap {nic.tap}"
                taps.add(nic.tap)
            else:
                assert nic.tap is None, nic
            if nic.ip is not None:
                assert net.mode in ("nat", "routed", "isolated") and net.subnet is not None, nic
                assert nic.ip in net.subnet and nic.ip != net.gateway, nic
                assert nic.ip not in (net.subnet.network_address, net.subnet.broadcast_address), nic
                assert (net.name, nic.ip) not in ips, f"duplicate ip {nic.ip}"
                ips.add((net.name, nic.ip))
    for net in topo.networks:
        if net.mode == "socket" and net.socket.transport in ("tcp", "udp"):
            assert sum(n.network == net.name for g in topo.guests for n in g.nics) <= 2, net


# ------------------------------------------------------------------ structured documents

NET_NAMES = ["default", "lab", "lan", "slirp", "link", "n_2"]
GUEST_NAMES = ["web", "db", "a", "b", "g" * 20]
WEIRD_NAMES = ["../x", "", "a b", "x" * 33, "n\u00e9t", "-a", "a.b"]

scalars = st.one_of(st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(),
                    st.text(max_size=10), st.dates(), st.times())
any_value = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                         max_leaves=6)


def mostly(strategy, weight: int = 4):
    """`strategy` most of the time, any TOML value (of any type) otherwise."""
    return st.one_of(*[strategy] * weight, any_value)


def pick(*values):
    return st.sampled_from(values)


net_name = st.one_of(pick(*NET_NAMES), pick(*NET_NAMES), pick(*WEIRD_NAMES), st.text(max_size=6))
guest_name = st.one_of(pick(*GUEST_NAMES), pick(*GUEST_NAMES), pick(*WEIRD_NAMES), st.text(max_size=6))
ifname = st.one_of(pick("virbr0", "br0", "br1", "eth0", "kvmiso0", "kn-web-0", "vnet0", "a" * 15),
                   pick("a" * 16, "br 0", "br/0", "..", "$(x)", "kvmn\u0430t0", "\uff42\uff52\uff10", "", "-br"),
                   st.text(max_size=17))
octet = st.integers(0, 255)
ipv4 = st.one_of(pick("192.168.122.1", "192.168.122.2", "192.168.122.10", "192.168.122.11", "192.168.122.254",
                      "10.0.2.2", "10.0.2.3", "10.0.2.15", "10.0.2.100", "230.0.0.1", "127.0.0.1"),
                 st.builds("192.168.122.{}".format, octet), st.builds("10.0.2.{}".format, octet),
                 st.ip_addresses(v=4).map(str),
                 pick("192.168.122.0", "192.168.122.255", "::1", "fd00::1", "banana", "1.2.3", "01.2.3.4", ""))
subnet = st.one_of(pick("192.168.122.0/24", "10.0.0.0/8", "10.0.2.0/24", "192.168.122.0/25", "192.168.122.128/25",
                        "10.77.0.0/24", "10.80.0.0/16"),
                   pick("0.0.0.0/0", "192.168.122.0/31", "192.168.122.0/32", "fd00::/64", "192.168.122.7/24",
                        "192.168.122.0", "10.0.2.0/255.255.255.0", "banana"),
                   st.builds("{}/{}".format, st.ip_addresses(v=4), st.integers(0, 33)))
port_int = st.one_of(st.integers(1, 65535), pick(0, 1, 22, 80, 8080, 65535, 65536, -1), st.integers(-70000, 140000))
port = st.one_of(port_int, port_int,
                 st.builds("{}-{}".format, port_int, port_int),
                 st.builds(lambda a, n: f"{a}-{a + n}", st.integers(1, 65535), st.integers(0, 20)),
                 pick("80", " 80-81 ", "80 - 81", "8000-", "\u0668\u0660-\u0668\u0661", "0x50"))
MAC_SPELLINGS = (lambda h: ":".join(h[i:i + 2] for i in range(0, 12, 2)),  # 52:54:00:12:34:56
                 lambda h: "-".join(h[i:i + 2] for i in range(0, 12, 2)).upper(),  # 52-54-00-12-34-56
                 lambda h: ".".join(h[i:i + 4] for i in range(0, 12, 4)),  # 5254.0012.3456
                 lambda h: h)  # bare
mac = st.one_of(pick("52:54:00:12:34:56", "52:54:00:12:34:57", "52:54:00:AA:00:01", "52-54-00-aa-00-01"),
                pick("53:54:00:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "52:54:00:zz:00:01", "", "52:54"),
                pick("5254.0012.3456", "525400123456", "52-54-00-12-34-56", "5254.0012.345", "52540012345", "52:54:0:1:2:3"),
                st.builds(lambda b, spell: spell(b.hex()), st.binary(min_size=6, max_size=6), pick(*MAC_SPELLINGS)))
path_text = st.one_of(pick("/srv/tftp", "/srv/a b", "relative/dir", "/a,b", "/x\ny", "", "/srv/\u0000"), st.text(max_size=8))
guest_ref = st.one_of(pick(*GUEST_NAMES), ipv4)
text_value = st.one_of(pick("kvm.lan", "lan", "a..b", "-x", "kvm lan", "devbox", "a,b"), st.text(max_size=10))

dhcp = st.fixed_dictionaries({}, optional={
    "start": mostly(ipv4), "end": mostly(ipv4),
    "lease_time": mostly(st.one_of(pick("1h", "3600", "infinite", "12h", "forever", "1y", "0", "\u0661h"), st.text(max_size=4))),
    "router": any_value})
forward = st.fixed_dictionaries({}, optional={
    "proto": mostly(pick("tcp", "udp", "sctp", "TCP")), "host_port": mostly(port), "guest_port": mostly(port),
    "guest": mostly(guest_ref), "host_addr": mostly(ipv4), "protocol": any_value})
hostfwd = st.fixed_dictionaries({}, optional={
    "proto": mostly(pick("tcp", "udp", "icmp")), "host_addr": mostly(ipv4), "host_port": mostly(port_int),
    "guest_addr": mostly(ipv4), "guest_port": mostly(port_int)})
guestfwd = st.fixed_dictionaries({}, optional={
    "server_addr": mostly(ipv4), "server_port": mostly(port_int),
    "target": mostly(pick("10.0.0.1:80", "cmd:nc 10.0.0.1 80", "nowhere", "cmd:a,b", "host:99999", "cmd:"))})

VALUES = {
    "mode": pick(*NETWORK_KEYS, "wormhole", "NAT", ""),
    "bridge": ifname, "uplink": ifname, "stp": st.booleans(),
    "forward_delay": st.integers(-2, 32), "mtu": st.one_of(st.integers(60, 70000), pick(67, 68, 1500, 65535, 65536)),
    "subnet": subnet, "gateway": ipv4, "dhcp": dhcp, "domain": text_value,
    "dns_hosts": st.dictionaries(st.one_of(pick("files", "db", "bad name", "-x"), st.text(max_size=5)), mostly(ipv4), max_size=3),
    "tftp_root": path_text, "bootfile": path_text, "spoof_protection": st.booleans(),
    "forwards": st.lists(mostly(forward, 8), max_size=4),
    "net": st.one_of(subnet, pick("10.0.2.0", "10.1.0.0/255.255.0.0", "10.0.2.0/255.0.255.0")),
    "host": ipv4, "dns": ipv4, "dhcpstart": ipv4, "restrict": st.booleans(),
    "hostname": text_value, "domainname": text_value, "tftp": path_text, "smb": path_text, "ipv6": st.booleans(),
    "hostfwd": st.lists(mostly(hostfwd, 8), max_size=3), "guestfwd": st.lists(mostly(guestfwd, 8), max_size=2),
    "transport": pick("tcp", "udp", "mcast", "pigeon"), "address": ipv4, "port": port_int, "localaddr": ipv4,
}
REQUIRED = {"nat": ("bridge", "subnet"), "routed": ("bridge", "subnet"), "isolated": ("bridge",),
            "bridge": ("bridge", "uplink"), "socket": ("transport", "port"), "user": ()}


@st.composite
def network(draw):
    mode = draw(VALUES["mode"])
    allowed = NETWORK_KEYS.get(mode, NETWORK_KEYS["nat"])
    keys = set(draw(st.lists(st.sampled_from(allowed), unique=True, max_size=len(allowed))))
    keys |= {k for k in REQUIRED.get(mode, ()) if draw(st.integers(0, 9))}  # required keys, 90% each
    if not draw(st.integers(0, 7)):
        keys.add(draw(st.one_of(st.sampled_from(sorted(VALUES)), pick("colour"))))  # maybe another mode's key
    net = {} if not draw(st.integers(0, 15)) else {"mode": mode}
    for key in sorted(keys - {"mode"}):
        net[key] = draw(mostly(VALUES.get(key, any_value), 6))
    return net


nic = st.fixed_dictionaries({"network": mostly(net_name, 8)}, optional={
    "mac": mostly(mac), "ip": mostly(ipv4), "model": mostly(pick(*NIC_MODELS, "virtio")), "tap": mostly(ifname),
    "bridge": any_value})
guest = st.fixed_dictionaries({}, optional={
    "nics": mostly(st.lists(mostly(nic, 8), max_size=4), 8),
    "memory": mostly(st.one_of(st.integers(0, 1 << 21), pick(15, 16, 1 << 20, (1 << 20) + 1))),
    "cpus": mostly(st.integers(-1, 1100)), "queues": mostly(st.integers(0, 70)),
    "kernel": mostly(path_text), "initrd": mostly(path_text), "append": mostly(st.text(max_size=10)),
    "disk": mostly(path_text), "qemu_args": mostly(st.lists(mostly(st.text(max_size=6)), max_size=3)),
    "ram": any_value})
document = st.fixed_dictionaries(
    {"networks": mostly(st.dictionaries(net_name, mostly(network(), 10), min_size=0, max_size=4), 10),
     "guests": mostly(st.dictionaries(guest_name, mostly(guest, 10), max_size=4), 10)},
    optional={"name": mostly(st.one_of(pick("fuzz", "lab", "a b", "", "x" * 25), st.text(max_size=6))),
              "firewall": mostly(pick("auto", "nftables", "iptables", "pf")), "colour": any_value})


@st.composite
def clean_document(draw):
    """A valid topology most of the time: each network gets its own bridge and subnet, NICs name
    existing networks, static ips lie in their subnet, forwards name guests with static ips."""
    names = draw(st.lists(pick(*NET_NAMES), unique=True, min_size=1, max_size=4))
    nets, prefix = {}, {}
    for k, name in enumerate(names, 1):
        mode = draw(pick(*NETWORK_KEYS))
        net: dict = {"mode": mode}
        if mode in ("nat", "routed", "isolated", "bridge"):
            net["bridge"] = draw(st.one_of(st.just(f"kvmbr{k}"), pick(f"br{k}", f"virbr{k}", f"k-{name}"[:15])))
            if draw(st.booleans()):
                net["stp"] = draw(st.booleans())
            if draw(st.integers(0, 3)) == 0:
                net["mtu"] = draw(st.integers(68, 9000))
        if mode == "bridge":
            net["uplink"] = f"eth{k}"
        elif mode in ("nat", "routed") or mode == "isolated" and draw(st.booleans()):
            prefix[name] = f"10.{k}.0"
            net["subnet"] = f"10.{k}.0.0/24"
            if draw(st.booleans()):
                net["gateway"] = draw(pick(f"10.{k}.0.1", f"10.{k}.0.254"))
            if draw(st.booleans()):
                start = draw(st.integers(100, 200))
                net["dhcp"] = {"start": f"10.{k}.0.{start}", "end": f"10.{k}.0.{draw(st.integers(start, 253))}"}
                if draw(st.booleans()):
                    net["dhcp"]["lease_time"] = draw(pick("1h", "3600", "infinite", "2d", "30m"))
            if draw(st.booleans()):
                net["domain"] = draw(pick("kvm.lan", "lab", "example.org"))
            if draw(st.integers(0, 3)) == 0:
                net["dns_hosts"] = {"files": f"10.{k}.0.50"}
        elif mode == "user":
            if draw(st.booleans()):
                net["net"] = draw(pick(f"10.{k}.2.0/24", f"10.{k}.0.0/255.255.0.0", f"10.{k}.2.0"))
            base = net.get("net", "10.0.2.0").split("/")[0].rsplit(".", 1)[0]
            net["hostfwd"] = [{"host_port": 5000 + i + 10 * k, "guest_port": draw(st.integers(1, 65535)),
                               **({"proto": "udp"} if draw(st.booleans()) else {})}
                              for i in range(draw(st.integers(0, 2)))]
            if draw(st.booleans()):
                net["guestfwd"] = [{"server_addr": f"{base}.100", "server_port": 1234,
                                    "target": draw(pick("10.9.0.1:80", "cmd:nc 10.9.0.1 80"))}]
            if draw(st.booleans()):
                net["hostname"] = "devbox"
        elif mode == "socket":
            transport = draw(pick("tcp", "udp", "mcast"))
            net.update(transport=transport, port=10000 + 10 * k)
            if transport == "mcast":
                net["address"] = draw(pick("230.0.0.1", "239.1.2.3"))
        nets[name] = net
    guests = {}
    for g in draw(st.lists(pick(*GUEST_NAMES), unique=True, max_size=4)):
        nics = []
        for _ in range(draw(st.integers(0, 3))):
            n = draw(st.sampled_from(names))
            nic: dict = {"network": n}
            if n in prefix and draw(st.booleans()):
                nic["ip"] = f"{prefix[n]}.{draw(st.integers(2, 99))}"
            if draw(st.integers(0, 2)) == 0:
                nic["mac"] = draw(pick(*MAC_SPELLINGS))("525400" + "".join(f"{draw(octet):02x}" for _ in range(3)))
            if nets[n]["mode"] in BRIDGED_MODES and draw(st.integers(0, 4)) == 0:
                nic["tap"] = draw(pick("vnet0", "vnet1", f"tap-{g}"[:15]))
            if draw(st.integers(0, 3)) == 0:
                nic["model"] = draw(pick(*NIC_MODELS))
            nics.append(nic)
        guest: dict = {"nics": nics}
        if draw(st.booleans()):
            guest.update(memory=draw(st.integers(16, 4096)), cpus=draw(st.integers(1, 8)))
        guests[g] = guest
    for name, net in nets.items():
        if net["mode"] != "nat" or not draw(st.booleans()):
            continue
        with_ip = [g for g, v in guests.items() for n in v["nics"] if n["network"] == name and "ip" in n]
        targets = with_ip + [f"{prefix[name]}.{draw(st.integers(2, 99))}"]
        fwds = []
        for _ in range(draw(st.integers(1, 3))):
            lo, size = draw(st.integers(1, 65000)), draw(pick(0, 0, 0, 2, 10))
            fwd = {"host_port": lo if size == 0 else f"{lo}-{lo + size}", "guest": draw(st.sampled_from(targets))}
            if draw(st.booleans()):
                glo = draw(st.integers(1, 65000))
                fwd["guest_port"] = glo if size == 0 else f"{glo}-{glo + size}"
            if draw(st.booleans()):
                fwd["proto"] = draw(pick("tcp", "udp"))
            if draw(st.integers(0, 3)) == 0:
                fwd["host_addr"] = "127.0.0.1"
            fwds.append(fwd)
        net["forwards"] = fwds
    doc = {"networks": nets, "guests": guests}
    if draw(st.booleans()):
        doc["name"] = draw(pick("fuzz", "lab", "my_lab_1"))
    if draw(st.booleans()):
        doc["firewall"] = draw(pick("auto", "nftables", "iptables"))
    return doc


def _slots(node, out):
    """Every (container, key) in a document, for corruption."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        out.append((node, key))
        if isinstance(value, (dict, list)):
            _slots(value, out)
    return out


@st.composite
def corrupted_document(draw):
    """A clean document with one to three keys replaced by wrong, invalid or random values,
    deleted, or joined by an unknown key: mostly one problem per example."""
    doc = draw(clean_document())
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        leaves = [(n, k) for n, k in slots if not isinstance(n[k], (dict, list))]
        if not slots:
            break
        node, key = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 3)) else slots))
        action = draw(pick("bad", "bad", "any", "delete", "unknown"))
        if action == "delete":
            del node[key]
        elif action == "unknown" and isinstance(node, dict):
            node[draw(pick("colour", "bridge", "subnet", "ip", "forwards", "mode"))] = draw(any_value)
        elif action == "bad" and isinstance(key, str) and key in VALUES:
            node[key] = draw(VALUES[key])
        else:
            node[key] = draw(st.one_of(any_value, ipv4, port, ifname, mac, subnet))
    return doc


# ------------------------------------------------------------------ a small TOML writer

def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else "inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(v)


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(path: list[str], table: dict, out: list[str], headers: bool) -> None:
    """Scalars (and, without headers, everything) as `key = value`, then sub-tables."""
    nested = {k: v for k, v in table.items() if headers and (isinstance(v, dict) and v or _is_table_array(v))}
    for k, v in table.items():
        if k not in nested:
            out.append(f"{_key(k)} = {_value(v)}")
    for k, v in nested.items():
        sub = path + [_key(k)]
        for item in (v if isinstance(v, list) else [v]):
            out.append(("[[{}]]" if isinstance(v, list) else "[{}]").format(".".join(sub)))
            _table(sub, item, out, headers)


def dump(doc: dict, style: int) -> str:
    """style 0: table headers everywhere; 1: one line per top-level key with inline tables;
    2: headers for networks, inline guests."""
    out: list[str] = []
    if style == 2:
        _table([], {k: v for k, v in doc.items() if k != "guests"}, out, True)
        if "guests" in doc:
            out.insert(0, f"guests = {_value(doc['guests'])}")
    else:
        _table([], doc, out, headers=style == 0)
    return "\n".join(out) + "\n"


def test_dump_round_trips():
    doc = {"name": "x", "networks": {"a b": {"mode": "nat", "dhcp": {"start": "\x7f\"\\"}, "forwards": [{"p": 1}, {}]}},
           "guests": {"web": {"nics": [{"network": "a b"}], "qemu_args": [], "x": [1, [2.5, float("inf")], {}]}}}
    for style in range(3):
        assert tomllib.loads(dump(doc, style)) == doc, dump(doc, style)


@settings(FUZZ, max_examples=800)
@given(doc=st.one_of(clean_document(), corrupted_document(), corrupted_document(), document), style=st.integers(0, 2))
def test_structured_topologies(doc, style):
    run_loader(dump(doc, style), "structured", structured=True)


# ------------------------------------------------------------------ raw mutations of real files

SNIPPETS = [b"\n", b"[", b"]", b"[[", b"]]", b'"', b"'", b"=", b" = ", b".", b",", b"{", b"}", b"#", b"\\", b"\\u0000",
            b"\xff", b"\xe2\x80\xa8", b"\r\n", b"\t", b"-", b"0", b"99999", b"/0", b"..", b"[networks.default]\n",
            b'mode = "user"\n', b'mode = "socket"\n', b"[[guests.web.nics]]\n", b'network = "nowhere"\n',
            b'ip = "192.168.122.1"\n', b'host_port = "9000-9001"\n', b"[[networks.default.forwards]]\n"]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(pick("flip", "byte", "insert", "delete_line", "dup_line", "swap_lines", "splice_line", "truncate", "cut"))
        lines = bytes(data).split(b"\n")
        if op in ("flip", "byte", "insert", "truncate", "cut") and not data:
            continue
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        i, j = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[pos] = draw(st.one_of(st.sampled_from(b'"[]=.#\n\\ {},\'0-'), st.integers(0, 255)))
        elif op == "insert":
            data[pos:pos] = draw(st.one_of(st.sampled_from(SNIPPETS), st.binary(max_size=6)))
        elif op == "truncate":
            del data[pos:]
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "delete_line":
            del lines[i]
        elif op == "dup_line":
            lines.insert(j, lines[i])
        elif op == "swap_lines":
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "splice_line":
            other = draw(st.sampled_from(SEEDS)).split(b"\n")
            lines.insert(i, other[draw(st.integers(0, len(other) - 1))])
        if op in ("delete_line", "dup_line", "swap_lines", "splice_line"):
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@settings(FUZZ, max_examples=2000)
@given(raw=mutated())
def test_mutated_topology_files(raw):
    # config.load() decodes files strictly (non-UTF-8 is an InputError before parsing); here the
    # mutations that break UTF-8 still exercise the parser, with U+FFFD in their place
    run_loader(raw.decode("utf-8", "replace"), "mutated")


def test_seed_files_load():
    """The mutation seeds themselves are valid (else the raw fuzzing starts from rejects)."""
    for seed in SEEDS:
        check_topology(config.load_text(seed.decode(), FILE))


def test_lone_surrogate_in_text():
    with pytest.raises(InputError):
        config.load_text('[networks.d]\nmode = "isolated"\nbridge = "br\udcff"\n', FILE)


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    started = time.monotonic()
    yield
    if not STATS:
        return
    total = sum(STATS.values(), Counter())
    line = (f"fuzz_loader: {total['examples']} examples in {time.monotonic() - started:.1f} s, "
            f"{total['crashes']} crashes; " + "; ".join(
                f"{k}: {c['examples']} ({c['accepted']} accepted, {c['rejected']} rejected, {c['crashes']} crashes)"
                for k, c in sorted(STATS.items())))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print("\n" + line)
    else:  # shown without -s too
        with capture.global_and_fixture_disabled():
            print("\n" + line)
