"""Section 7's other attachments, in the same lab as its NAT and slirp guests: the same guest on
a passt network (its passt started by `kvmnet passt start`, stopped by `kvmnet destroy`) and on
a direct network (a macvtap on a veth "uplink" into a LAN namespace, QEMU handed /dev/tapN as
`kvmnet qemu-args` says). Each returns the booted guest and where to measure it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

WAN_SERVER = "198.51.100.1"  # on the wan, not the host's gateway: passt maps that one to the host
MACVLAN = "10.61.0.250"  # the host's macvlan on the LAN (Lab.lan_behind_uplink)

PASST = """\
[networks.pn]
mode = "passt"
address = "10.0.2.15/24"   # slirp's addresses: the rows compare like with like
gateway = "10.0.2.2"
dns = []
mtu = 1500                 # the guest's DHCP client sets no MTU: what tap and slirp guests have
[[networks.pn.forwards]]
proto = "tcp"
host_addr = "127.0.0.1"
host_port = 5004
guest = "passt"
guest_port = 5002
[guests.passt]
[[guests.passt.nics]]
network = "pn"
"""

DIRECT = """\
[networks.lan]
mode = "direct"
uplink = "eth0"
macvtap_mode = "bridge"
host_macvlan = "kvmhost0"
host_address = "10.61.0.250/24"
[guests.macvtap]
[[guests.macvtap.nics]]
network = "lan"
mac = "52:54:00:61:00:20"
"""


@dataclass
class Row:
    guest: object
    host_addr: str  # the host as the guest reaches it (guest->host, ping)
    host_to_guest: tuple[str, int]  # where the host connects to reach the guest's port 5002
    wan_addr: str  # a sink outside the host
    wan_sink: object = None  # None: the lab's wan sink
    ping_addr: str | None = None  # None: host_addr


def _ok(res):
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def passt_guest(lab, tmp) -> Row:
    """guest->host goes to passt's gateway address (mapped to the host itself), host->guest
    through passt's forward of 127.0.0.1:5004, guest->wan through passt's own sockets. The ping
    goes to the host's own address: this passt answers no ICMP to the gateway address, and it
    relays ICMP through ping sockets (allowed here to every group, nobody's included)."""
    lab.wan.sh(f"ip addr add {WAN_SERVER}/32 dev lo")
    lab.host.sh(f"ip route add {WAN_SERVER}/32 via {lab.WAN_PEER}")
    lab.host.sh("sysctl -qw net.ipv4.ping_group_range='0 2147483647'")  # passt's ICMP: ping sockets
    topo = tmp / "passt.toml"
    topo.write_text(PASST)
    _ok(lab.kvmnet("passt", "start", str(topo), "passt"))
    args = json.loads(_ok(lab.kvmnet("qemu-args", "--json", str(topo), "passt")).stdout)
    (guest,) = lab.boot("passt", net_args={"passt": [w for nic in args["nics"] for w in nic["args"]]})
    return Row(guest, "10.0.2.2", ("127.0.0.1", 5004), WAN_SERVER, ping_addr=lab.WAN_HOST)


def macvtap_guest(lab, tmp, sink) -> Row:
    """A LAN namespace behind the uplink (dnsmasq, a sink at 10.61.0.1); the host reaches the
    guest through its macvlan kvmhost0, never through the uplink itself."""
    lan = lab.lan_behind_uplink(tmp)
    topo = tmp / "direct.toml"
    topo.write_text(DIRECT)
    _ok(lab.kvmnet("apply", str(topo)))
    res = _ok(lab.kvmnet("qemu-args", str(topo), "macvtap"))
    (device,) = re.findall(r"3<>(/dev/tap\d+)", res.stderr)
    (guest,) = lab.boot("macvtap", net_args={"macvtap": shlex.split(res.stdout)},
                        inner=["sh", "-c", f'exec "$@" 3<>{device}', "sh"])
    ip = guest.leases()["eth0"]["ip"].split("/")[0]
    return Row(guest, MACVLAN, (ip, 5002), lab.LAN_HOST, sink(lan, 5001))


def destroy(lab, tmp) -> None:
    """Both topologies' traces (the passt too) before the lab's namespaces go."""
    for name in ("passt.toml", "direct.toml"):
        if (tmp / name).exists():
            lab.kvmnet("destroy", str(tmp / name))
