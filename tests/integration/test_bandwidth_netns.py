"""Bandwidth limits with measured throughput. A guest is a client namespace: for a NIC limit,
behind kvmnet's own tap, which tests/helpers/taprelay.py holds open in QEMU's place and relays
to a veth into the client; for a network limit, on veth ports of the bridge. Each client moves
4 MiB to and from the host namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.netns import Netns, snapshot_diff
from helpers.throughput import Transfer, concurrent, measure, within_limit

pytestmark = pytest.mark.root
RELAY = Path(__file__).resolve().parents[1] / "helpers" / "taprelay.py"
GATEWAY = "10.90.0.1"
NETWORK = ('name = "bw"\n[networks.n]\nmode = "isolated"\nbridge = "kvbw0"\nsubnet = "10.90.0.0/24"\n'
           'forward_delay = 0\nstp = false\n{net_limit}\n')
GUEST = '[[guests.{name}.nics]]\nnetwork = "n"\ntap = "{tap}"\nmac = "52:54:00:90:00:{n:02x}"\n{limit}\n'
LIMIT = 'bandwidth = { inbound = "10mbit", outbound = "10mbit", burst = "64kb" }'


class Lab:
    def __init__(self, tmp_path):
        self.host, self.clients, self.file = Netns("kn-bw"), {}, tmp_path / "bw.toml"

    def write(self, net_limit: str = "", guests: dict | None = None) -> None:
        text = NETWORK.format(net_limit=net_limit)
        for n, (name, limit) in enumerate((guests or {}).items(), start=1):
            text += GUEST.format(name=name, tap=f"kvt{name}", n=n, limit=limit)
        self.file.write_text(text)

    def apply(self) -> None:
        res = self.host.kvmnet("apply", str(self.file))
        assert res.returncode == 0, res.stdout + res.stderr

    def add_tap_client(self, name: str, n: int) -> str:
        """A namespace behind the guest's tap kvt<name>, through a relay in QEMU's place."""
        ns = self.clients[name] = Netns("kn-bwc")
        self.host.sh(f"ip link add rl{name} type veth peer name eth0 netns {ns.name} && "
                     f"sysctl -qw net.ipv6.conf.rl{name}.disable_ipv6=1 && ip link set rl{name} up")
        ns.sh(f"ip addr add 10.90.0.{10 + n}/24 dev eth0 && ip link set eth0 up")
        self.relay = subprocess.Popen(["ip", "netns", "exec", self.host.name, sys.executable, str(RELAY),
                                       f"kvt{name}", f"rl{name}"], stdout=subprocess.PIPE, text=True)
        assert self.relay.stdout.readline().strip() == "ready"
        return f"10.90.0.{10 + n}"

    def add_client(self, name: str, n: int) -> str:
        """A namespace on the bridge through veth kvt<name> (the guest's tap name)."""
        ns = self.clients[name] = Netns("kn-bwc")
        self.host.sh(f"ip link add kvt{name} type veth peer name eth0 netns {ns.name} && "
                     f"ip link set kvt{name} master kvbw0 up")
        ns.sh(f"ip addr add 10.90.0.{10 + n}/24 dev eth0 && ip link set eth0 up")
        return f"10.90.0.{10 + n}"

    def close(self) -> None:
        if getattr(self, "relay", None):
            self.relay.kill()
            self.relay.wait()
        for ns in self.clients.values():
            ns.delete()
        self.host.delete()


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def _both_ways(lab, name: str, addr: str, port: int) -> tuple[float, float]:
    client = lab.clients[name].name
    inbound = measure(client, lab.host.name, addr, port)  # towards the guest
    outbound = measure(lab.host.name, client, GATEWAY, port + 1)
    return inbound, outbound


def test_a_nic_limited_to_10mbit_moves_4mib_at_10mbit_each_way_and_unlimited_without(lab):
    lab.write(guests={"g": ""})
    lab.apply()
    addr = lab.add_tap_client("g", 1)
    free_in, free_out = _both_ways(lab, "g", addr, 5001)
    lab.host.settle()  # the tap's link-local address, once the relay gave it a carrier
    before = lab.host.snapshot()
    lab.write(guests={"g": LIMIT})
    lab.apply()
    client = lab.clients["g"].name
    limited_in = within_limit(lambda t: measure(client, lab.host.name, addr, 5011 + t), 9, 11)
    limited_out = within_limit(lambda t: measure(lab.host.name, client, GATEWAY, 5021 + t), 9, 11)
    print(f"unlimited {free_in:.1f}/{free_out:.1f} Mbit/s, limited {limited_in}/{limited_out} Mbit/s")
    assert free_in > 50 and free_out > 50
    lab.write(guests={"g": ""})
    lab.apply()  # the limit dropped from the file: tc and the ifb are gone again
    assert lab.host.snapshot() == before, snapshot_diff(before, lab.host.snapshot())
    assert "tbf" not in lab.host.run("tc", "qdisc", "show", "dev", "kvtg").stdout
    again_in, again_out = _both_ways(lab, "g", addr, 5005)
    assert again_in > 50 and again_out > 50


def test_a_network_limit_is_shared_by_two_clients_and_destroy_is_exact(lab):
    before = lab.host.snapshot()
    lab.write(net_limit=LIMIT)
    lab.apply()
    a, b = lab.add_client("a", 1), lab.add_client("b", 2)
    ab = [(lab.clients[n].name, addr) for n, addr in (("a", a), ("b", b))]
    # Together within the one limit (two unshared 10mbit limits would give ~20). Two TCP flows
    # competing in one tbf queue lose some of it to drops and backoff (measured 8.1-10 Mbit/s
    # on a loaded 2-core machine, once 6.7), so the floor is lower than the single-client
    # test's 9, and a trial short of it is run again.
    ins = within_limit(lambda t: concurrent([Transfer(c, lab.host.name, addr, 5001 + 10 * t + i)
                                             for i, (c, addr) in enumerate(ab)]), 7.5, 11)
    outs = within_limit(lambda t: concurrent([Transfer(lab.host.name, c, GATEWAY, 5003 + 10 * t + i)
                                              for i, (c, _) in enumerate(ab)]), 7.5, 11)
    print(f"two clients together: inbound {ins}, outbound {outs} Mbit/s")
    free = concurrent([Transfer(lab.clients["a"].name, lab.clients["b"].name, a, 5045)])
    assert free > 50  # guest to guest on the bridge: not the network's routed traffic
    for name in ("a", "b"):
        lab.host.sh(f"ip link del kvt{name}")
    res = lab.host.kvmnet("destroy", str(lab.file))
    assert res.returncode == 0, res.stdout + res.stderr
    after = lab.host.snapshot()
    assert after == before, snapshot_diff(before, after)
