"""A small change to a populated topology (issue 18, target 4) in namespaces, with either
firewall backend: adding one guest with one NIC and one forward, then removing it, leaves
everything else alone. An established TCP connection from the wan through another guest's
forward carries data before, between and after the two applies on the same socket, its conntrack
entry is the same one (same id and start time), dnsmasq keeps its pid (reloaded: the new
guest's static lease is served at once) and the other guests' leases stay as they were."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.natlab import HELPERS, NatLab, dhcp_lease

pytestmark = pytest.mark.root

NETS, GUESTS, FORWARDS = 4, 40, 120
ECHO_PORT, WAN_PORT, EXTRA_PORT = 7000, 8080, 19999
WEB_MAC, OTHER_MAC, EXTRA_MAC = "52:54:00:12:34:56", "52:54:00:00:00:77", "52:54:00:00:00:99"
WEB_IP, EXTRA_IP = "10.60.0.10", "10.60.0.250"


# one connection, kept open: each stdin line goes out on it, its echo comes back on stdout
WAN_CLIENT = """
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("local", conn.getsockname()[1], flush=True)
for line in sys.stdin:
    conn.sendall(line.encode())
    got = b""
    while not got.endswith(b"\\n"):
        chunk = conn.recv(4096)
        if not chunk:
            print("closed", flush=True)
            sys.exit(1)
        got += chunk
    print(got.decode().strip(), flush=True)
"""

# the kernel's conntrack entries for TCP to a port: "id state start" per entry. The id alone does
# not tell a new entry from the old one (it hashes the entry's address, which the kernel may reuse
# for an entry made again for the same tuple); its start time (nf_conntrack_timestamp) does.
CONNTRACK = """
import sys
from pyroute2 import NFCTSocket
for msg in NFCTSocket().dump():
    orig = msg.get_attr("CTA_TUPLE_ORIG")
    proto = orig.get_attr("CTA_TUPLE_PROTO")
    if proto.get_attr("CTA_PROTO_NUM") == 6 and proto.get_attr("CTA_PROTO_DST_PORT") == int(sys.argv[1]):
        info = msg.get_attr("CTA_PROTOINFO")
        state = info.get_attr("CTA_PROTOINFO_TCP").get_attr("CTA_PROTOINFO_TCP_STATE") if info else None
        print(msg.get_attr("CTA_ID"), state, msg.get_attr("CTA_TIMESTAMP").get_attr("CTA_TIMESTAMP_START"))
"""
TCP_ESTABLISHED = 3  # nf_conntrack's TCP_CONNTRACK_ESTABLISHED


def network(j: int) -> list[str]:
    return [f"[networks.n{j}]", 'mode = "nat"', f'bridge = "kvsc{j}"', f'subnet = "10.{60 + j}.0.0/24"',
            f'gateway = "10.{60 + j}.0.1"', "stp = false", "", f"[networks.n{j}.dhcp]",
            f'start = "10.{60 + j}.0.100"', f'end = "10.{60 + j}.0.199"', ""]


def forward(net: int, host_port: int, guest: str, guest_port: int) -> list[str]:
    return [f"[[networks.n{net}.forwards]]", 'proto = "tcp"', f"host_port = {host_port}",
            f'guest = "{guest}"', f"guest_port = {guest_port}", ""]


def guest(name: str, net: int, ip: str, mac: str | None = None) -> list[str]:
    return [f"[guests.{name}]", f"[[guests.{name}.nics]]", f'network = "n{net}"', f'ip = "{ip}"',
            *([f'mac = "{mac}"'] if mac else []), ""]


def topology(extra: bool) -> str:
    """NETS networks; `web` (the connection's end) and `other` (a dynamic lease) on n0 and GUESTS
    more with static leases round-robin over the networks; FORWARDS forwards to those. extra:
    one more guest `gx` with one NIC and one forward (the small change)."""
    out = ['name = "small"', ""]
    for j in range(NETS):
        out += network(j)
    out += forward(0, WAN_PORT, "web", ECHO_PORT)
    for k in range(FORWARDS):
        out += forward(k % NETS, 20000 + k, f"g{k % GUESTS:02d}", 80 + k // GUESTS)
    if extra:
        out += forward(0, EXTRA_PORT, "gx", 80)
    out += guest("web", 0, WEB_IP, WEB_MAC)
    out += ["[guests.other]", "[[guests.other.nics]]", 'network = "n0"', f'mac = "{OTHER_MAC}"', ""]
    for i in range(GUESTS):
        net = i % NETS
        out += guest(f"g{i:02d}", net, f"10.{60 + net}.0.{20 + i // NETS}")
    if extra:
        out += guest("gx", 0, EXTRA_IP, EXTRA_MAC)
    return "\n".join(out)


class Connection:
    """A TCP connection from the wan namespace to the host's forward, one process holding it."""

    def __init__(self, lab: NatLab):
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.wan.name, sys.executable, "-c", WAN_CLIENT,
                                      NatLab.WAN_HOST, str(WAN_PORT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.local_port = int(self.proc.stdout.readline().split()[1])

    def echo(self, text: str) -> str:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def conntrack(lab: NatLab) -> list[tuple[int, int, int]]:
    out = lab.host.run(sys.executable, "-c", CONNTRACK, str(WAN_PORT)).stdout
    return [tuple(int(x) for x in line.split()) for line in out.splitlines()]


def dnsmasq_pid(lab: NatLab) -> str:
    return (lab.host.state_dir / "small" / "dnsmasq-n0.pid").read_text().strip()


def leases(lab: NatLab) -> list[str]:
    """dnsmasq's lease lines for web and other (expiry, MAC, address, name, client id)."""
    text = next((lab.host.state_dir / "small").glob("*n0*.leases")).read_text()
    return sorted(line for line in text.splitlines() if WEB_MAC in line or OTHER_MAC in line)


@pytest.fixture(params=["nftables", "iptables"])
def lab(tmp_path, request):
    topo = tmp_path / "small.toml"
    topo.write_text(topology(extra=False))
    lab = NatLab(topo, request.param)
    conn = None
    try:
        lab.apply()
        lab.host.run("sysctl", "-qw", "net.netfilter.nf_conntrack_timestamp=1")  # this namespace's own
        lab.add_client("web", WEB_MAC, bridge="kvsc0", serve=False)
        lab.add_client("other", OTHER_MAC, bridge="kvsc0", serve=False)
        subprocess.Popen(["ip", "netns", "exec", lab.clients["web"].ns.name, sys.executable, str(HELPERS / "echo_server.py"),
                          str(ECHO_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.serve(lab.clients["web"].ns, "web", ECHO_PORT + 1)  # only to wait until ports listen
        conn = lab.conn = Connection(lab)
        yield lab
    finally:
        if conn:
            conn.close()
        lab.close()


def test_adding_and_removing_a_guest_keeps_an_established_connection_and_dnsmasq(lab):
    topo = lab.topology
    assert lab.clients["web"].lease["ip"] == WEB_IP
    assert lab.conn.echo("before") == "before"
    [entry] = conntrack(lab)
    assert entry[1] == TCP_ESTABLISHED
    pid, held = dnsmasq_pid(lab), leases(lab)
    assert len(held) == 2, held

    topo.write_text(topology(extra=True))
    res = lab.apply()
    assert "gx" in res.stdout, res.stdout
    assert lab.conn.echo("with gx") == "with gx"
    assert conntrack(lab) == [entry]
    assert dnsmasq_pid(lab) == pid
    # reloaded, not restarted: the new guest's static lease is served by the same dnsmasq
    gx = lab._ns("kn-c")
    lab.host.sh(f"ip link add c-gx type veth peer name eth0 netns {gx.name} && ip link set c-gx master kvsc0 up")
    gx.sh(f"ip link set eth0 address {EXTRA_MAC} up")
    assert dhcp_lease(gx, "gx")["ip"] == EXTRA_IP
    lab.serve(gx, "gx", 80)
    assert "gx saw 10.0.0.1" in lab.wan.run(sys.executable, str(Path(__file__).parents[1] / "helpers" / "fetch.py"),
                                            f"http://{NatLab.WAN_HOST}:{EXTRA_PORT}/", "3").stdout

    topo.write_text(topology(extra=False))
    res = lab.apply()
    assert "gx" in res.stdout, res.stdout
    assert lab.conn.echo("after") == "after"
    assert conntrack(lab) == [entry]
    assert dnsmasq_pid(lab) == pid
    assert leases(lab) == held
    assert "ERROR" in lab.wan.run(sys.executable, str(Path(__file__).parents[1] / "helpers" / "fetch.py"),
                                  f"http://{NatLab.WAN_HOST}:{EXTRA_PORT}/", "1", check=False).stdout
