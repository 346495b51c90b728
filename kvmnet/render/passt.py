"""A guest NIC's passt command line (Debian 12's passt 0.0~git20230309), and where its files are.
Pure: the caller starts it (host/passt.py).

passt daemonizes once its socket is bound (started without a terminal), writes its pid file and,
started as root, drops to user nobody first: its directory must be nobody's (host/passt.py).
The socket path is also the marker that identifies the process (an argv word of its own), as a
dnsmasq's --conf-file does."""

from __future__ import annotations

import os

from .. import naming
from ..errors import InputError
from ..valueclass import value
from ..model import Forward, Network, Topology

SOCKET, PID = "sock", "pid"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with its NUL


@value
class PasstNic:
    guest: str
    index: int  # the NIC's index in the guest
    network: str
    directory: str

    @property
    def socket(self) -> str:
        return os.path.join(self.directory, SOCKET)

    @property
    def pid_file(self) -> str:
        return os.path.join(self.directory, PID)


def nics(topo: Topology, guest_name: str, state_root: str) -> list[PasstNic]:
    """The guest's NICs on passt networks; InputError if a socket path would not fit."""
    out = []
    for i, nic in enumerate(topo.guest(guest_name).nics):
        if topo.network(nic.network).mode != "passt":
            continue
        one = PasstNic(guest_name, i, nic.network, naming.passt_dir(topo.name, guest_name, i, state_root))
        if len(one.socket.encode()) > MAX_SOCKET_PATH:
            raise InputError(f"guests.{guest_name}.nics[{i}]: passt's socket {one.socket} is longer than "
                             f"{MAX_SOCKET_PATH} bytes; use a shorter --state-dir or topology name")
        out.append(one)
    return out


def _ports(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def forward_spec(f: Forward) -> str:
    """passt's -t/-u SPEC: [ADDR/]HOST_PORTS[:GUEST_PORTS]."""
    spec = f"{f.host_addr}/" if f.host_addr else ""
    spec += _ports(f.host_ports)
    if f.guest_ports != f.host_ports:
        spec += f":{_ports(f.guest_ports)}"
    return spec


def _first_nic_on(topo: Topology, guest: str, network: str) -> int:
    return next(i for i, n in enumerate(topo.guest(guest).nics) if n.network == network)


def argv(topo: Topology, nic: PasstNic, exe: str = "passt") -> list[str]:
    """The command that starts this NIC's passt. A forward goes to the guest's first NIC on the
    network (each NIC's passt binds its own host ports)."""
    net: Network = topo.network(nic.network)
    p = net.passt
    words = [exe, "--quiet", "--socket", nic.socket, "--pid", nic.pid_file]
    if not p.ipv6:
        words.append("--ipv4-only")
    elif not p.ipv4:
        words.append("--ipv6-only")
    if p.address is not None:
        words += ["--address", str(p.address.ip), "--netmask", str(p.address.network.prefixlen)]
    for key, flag in (("address6", "--address"), ("gateway", "--gateway"), ("gateway6", "--gateway"),
                      ("dns_forward", "--dns-forward")):
        if getattr(p, key) is not None:
            words += [flag, str(getattr(p, key))]
    # empty lists: this snapshot refuses `--dns ""` and `--search ""` (which its --help offers)
    if p.dns is not None:
        words += [w for addr in p.dns for w in ("--dns", str(addr))] if p.dns else ["--no-dhcp-dns"]
    if p.search is not None:
        words += ["--search", " ".join(p.search)] if p.search else ["--no-dhcp-search"]
    if not p.map_gateway:
        words.append("--no-map-gw")
    if p.mtu is not None:
        words += ["--mtu", str(p.mtu)]
    mine = [f for f in net.forwards if f.guest == nic.guest and _first_nic_on(topo, f.guest, net.name) == nic.index]
    for proto, flag in (("tcp", "--tcp-ports"), ("udp", "--udp-ports")):
        words += [w for f in mine if f.proto == proto for w in (flag, forward_spec(f))]
    return words
