"""spoof_protection over IPv6, with real clients: a guest sends from its EUI-64 link-local and
SLAAC addresses and its static ip6 (a guest without one: the DHCPv6 range), from nothing else;
it cannot redirect another guest's address to itself with a neighbour advertisement, nor make
itself the others' router with a router advertisement. A guest leasing from the DHCPv6 range
cannot take another guest's static ip6 inside that range either (other's is)."""

import subprocess
import time

import pytest

from helpers.natlab import HELPERS, PY, NatLab
from integration.test_ipv6_netns import serve6, wait_slaac

pytestmark = pytest.mark.root
WAN6_HOST, WAN6_PEER = "fd00:99::2", "fd00:99::1"
MAC = {"web": "52:54:00:71:00:10", "other": "52:54:00:71:00:11", "roamer": "52:54:00:71:00:12"}
STATIC6 = {"web": "fd00:71::10", "other": "fd00:71::111"}  # other's inside the dhcp6 range
TOPOLOGY = f"""\
name = "spoof6"
[networks.n]
mode = "nat"
bridge = "kv7a"
stp = false
subnet = "10.71.0.0/24"
subnet6 = "fd00:71::/64"
spoof_protection = true
[networks.n.dhcp]
start = "10.71.0.100"
end = "10.71.0.199"
[networks.n.dhcp6]
start = "fd00:71::100"
end = "fd00:71::1ff"
""" + "".join(f"""
[guests.{name}]
[[guests.{name}.nics]]
network = "n"
mac = "{mac}"
tap = "c-{name}"
""" + (f'ip6 = "{STATIC6[name]}"\n' if name in STATIC6 else "") for name, mac in MAC.items())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("spoof6") / "spoof6.toml"
    path.write_text(TOPOLOGY)
    lab = NatLab(path)
    try:
        lab.host.sh(f"ip -6 addr add {WAN6_HOST}/64 dev wan0 nodad")
        lab.wan.sh(f"ip -6 addr add {WAN6_PEER}/64 dev eth0 nodad && ip -6 route add fd00:71::/64 via {WAN6_HOST}")
        serve6(lab.wan, "wan")
        lab.apply()
        lab.slaac = {}
        for name, mac in MAC.items():
            client = lab.add_client(name, mac, "kv7a", serve=False)
            lab.slaac[name] = wait_slaac(client.ns, "fd00:71::/64")[0]
        yield lab
    finally:
        lab.close()


def ping_from(lab, name: str, source: str) -> bool:
    """Whether the wan answers a ping from `source` on client `name` (added to it if needed)."""
    ns = lab.clients[name].ns
    ns.run("ip", "-6", "addr", "add", f"{source}/64", "dev", "eth0", "nodad", check=False)
    return ns.run("ping", "-6", "-c", "1", "-W", "1", "-I", source, WAN6_PEER, check=False).returncode == 0


def test_own_addresses_pass_others_are_dropped(lab):
    results = {
        "web slaac": ping_from(lab, "web", lab.slaac["web"]),
        "web static ip6": ping_from(lab, "web", "fd00:71::10"),
        "roamer in the dhcp6 range": ping_from(lab, "roamer", "fd00:71::150"),
        "web as other": ping_from(lab, "web", STATIC6["other"]),
        "roamer as other, inside the range": ping_from(lab, "roamer", STATIC6["other"]),
        "web in the dhcp6 range": ping_from(lab, "web", "fd00:71::151"),
        "roamer outside the range": ping_from(lab, "roamer", "fd00:71::99"),
        "web as roamer's slaac": ping_from(lab, "web", lab.slaac["roamer"]),
    }
    assert results == {"web slaac": True, "web static ip6": True, "roamer in the dhcp6 range": True,
                       "web as other": False, "roamer as other, inside the range": False,
                       "web in the dhcp6 range": False, "roamer outside the range": False,
                       "web as roamer's slaac": False}


def neighbour(lab, addr: str) -> str:
    return lab.host.run("ip", "-6", "neigh", "show", addr, "dev", "kv7a").stdout


def test_neighbour_advertisement_for_another_guests_address_is_dropped(lab):
    target = lab.slaac["other"]
    lab.host.run("ping", "-6", "-c", "1", "-W", "1", target, check=False)
    assert MAC["other"] in neighbour(lab, target)
    lab.clients["web"].ns.run(PY, str(HELPERS / "nd6send.py"), "na", "eth0", target, MAC["web"])
    time.sleep(0.3)
    assert MAC["other"] in neighbour(lab, target), neighbour(lab, target)
    # the same advertisement for web's own address passes (the check is not that all are dropped)
    own = lab.slaac["web"]
    lab.host.run("ping", "-6", "-c", "1", "-W", "1", own, check=False)
    lab.host.sh(f"ip -6 neigh replace {own} lladdr 52:54:00:71:00:99 dev kv7a nud stale")
    lab.clients["web"].ns.run(PY, str(HELPERS / "nd6send.py"), "na", "eth0", own, MAC["web"])
    time.sleep(0.3)
    assert MAC["web"] in neighbour(lab, own), neighbour(lab, own)


def test_a_roaming_guest_cannot_advertise_a_static_ip6_inside_the_range(lab):
    target = STATIC6["other"]
    lab.clients["other"].ns.run("ip", "-6", "addr", "add", f"{target}/64", "dev", "eth0", "nodad", check=False)
    lab.host.run("ping", "-6", "-c", "1", "-W", "1", target, check=False)
    assert MAC["other"] in neighbour(lab, target)
    lab.clients["roamer"].ns.run(PY, str(HELPERS / "nd6send.py"), "na", "eth0", target, MAC["roamer"])
    time.sleep(0.3)
    assert MAC["other"] in neighbour(lab, target), neighbour(lab, target)
    # an address of the range nobody holds statically is the roamer's to advertise
    free = "fd00:71::150"
    lab.host.sh(f"ip -6 neigh replace {free} lladdr 52:54:00:71:00:99 dev kv7a nud stale")
    lab.clients["roamer"].ns.run(PY, str(HELPERS / "nd6send.py"), "na", "eth0", free, MAC["roamer"])
    time.sleep(0.3)
    assert MAC["roamer"] in neighbour(lab, free), neighbour(lab, free)


def test_router_advertisement_from_a_guest_is_dropped(lab):
    lab.clients["web"].ns.run(PY, str(HELPERS / "nd6send.py"), "ra", "eth0")
    time.sleep(0.5)
    routes = lab.clients["roamer"].ns.run("ip", "-6", "route", "show", "default").stdout
    assert "fe80::5054:ff:fe71:10" not in routes, routes
    assert routes.startswith("default via fe80::"), routes  # kvmnet's own RA still counts


def test_zz_reapply_is_a_no_op_then_destroy(lab):
    res = lab.apply()  # the raw-payload rule reads back as kvmnet wrote it: no drift
    assert "already in sync" in res.stdout + res.stderr, res.stdout + res.stderr
    res = lab.kvmnet("destroy", str(lab.topology))
    assert res.returncode == 0, res.stdout + res.stderr
