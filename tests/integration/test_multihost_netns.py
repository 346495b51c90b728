"""A network stretched over three hosts on kernel VXLAN (static control plane), proven in
namespaces: three host namespaces on an underlay bridge apply the same file, each with its own
state dir; clients on h2 and h3 get leases from h1's dnsmasq (with the overlay's MTU), reach each
other and the wan through h1's NAT, the wan reaches a client on h3 through h1's port forward, a
1400-byte ping with DF crosses the overlay, and destroy on one host leaves the others working and
itself exactly as before."""

from pathlib import Path

import pytest

from helpers.multihost import MultiHost
from helpers.natlab import dhcp_lease
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "data" / "multihost" / "three.toml"
WEB_MAC, DB_MAC = "52:54:00:12:34:56", "52:54:00:00:00:22"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    topo = tmp_path_factory.mktemp("mh") / "multihost.toml"
    text = TOPOLOGY.read_text().replace('ip = "10.95.0.10" }', f'ip = "10.95.0.10", mac = "{WEB_MAC}" }}')
    topo.write_text(text.replace('{ network = "lab" }', f'{{ network = "lab", mac = "{DB_MAC}" }}'))
    lab = MultiHost(topo)
    try:
        lab.before = {name: ns.snapshot() for name, ns in lab.hosts.items()}
        for name in ("h1", "h2", "h3"):
            res = lab.kvmnet(name, "apply", str(topo))
            assert res.returncode == 0, res.stdout + res.stderr
        lab.web = lab.add_client("h3", "web", WEB_MAC, "kvb-lab")
        lab.db = lab.add_client("h2", "db", DB_MAC, "kvb-lab")
        yield lab
    finally:
        lab.close()


def _from_wan(lab) -> str:
    fetch = Path(__file__).resolve().parents[1] / "helpers" / "fetch.py"
    return lab.wan.run("python3", str(fetch), f"http://{lab.WAN_HOST}:8080/", "3", check=False).stdout


def test_each_host_knows_which_host_it_is(lab):
    for name in ("h1", "h2", "h3"):
        res = lab.kvmnet(name, "plan", str(lab.topology))
        assert res.returncode == 0 and f"on host {name}; nothing to do" in res.stdout, res.stdout + res.stderr
    res = lab.kvmnet("h2", "plan", "--host", "h2", str(lab.topology))
    assert res.returncode == 0 and "on host h2; nothing to do" in res.stdout, res.stderr
    res = lab.kvmnet("h2", "plan", "--host", "h1", str(lab.topology))
    assert (res.returncode, res.stderr) == (
        2, f"{lab.topology}:7: hosts.h1.underlay: 10.200.0.1 is not an address of this host (--host h1)\n")


def test_clients_on_other_hosts_get_leases_and_the_overlay_mtu_from_the_gateway_host(lab):
    assert lab.web.lease == {"ip": "10.95.0.10", "router": "10.95.0.1", "dns": "10.95.0.1", "domain": "", "mtu": "1450"}
    assert lab.db.lease["router"] == "10.95.0.1" and lab.db.lease["ip"].startswith("10.95.0.1")
    assert lab.hosts["h2"].run("ip", "-o", "addr", "show", "dev", "kvb-lab").stdout == ""  # no gateway on h2


def test_clients_reach_each_other_and_the_wan_and_the_wan_reaches_a_guest_on_h3(lab):
    assert lab.db.fetch("http://10.95.0.10/") == f"web saw {lab.db.lease['ip']}\n"  # over the overlay, not NATed
    assert lab.web.fetch(f"http://{lab.WAN_PEER}/") == f"wan saw {lab.WAN_HOST}\n"  # h1's MASQUERADE
    assert lab.db.fetch(f"http://{lab.WAN_PEER}/") == f"wan saw {lab.WAN_HOST}\n"
    assert _from_wan(lab) == f"web saw {lab.WAN_PEER}\n"  # h1's port forward 8080 -> web on h3


def test_a_1400_byte_ping_with_df_crosses_the_overlay_and_a_larger_one_is_refused_not_lost(lab):
    ok = lab.db.ns.run("ping", "-M", "do", "-s", "1400", "-c", "1", "-W", "2", "10.95.0.10", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = lab.web.ns.run("ping", "-M", "do", "-s", "1400", "-c", "1", "-W", "2", "10.95.0.1", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    big = lab.db.ns.run("ping", "-M", "do", "-s", "1423", "-c", "1", "-W", "2", "10.95.0.10", check=False)
    assert big.returncode != 0 and "mtu=1450" in big.stdout + big.stderr  # told at once, not a black hole


def test_the_vxlan_floods_to_each_peer(lab):
    fdb = lab.hosts["h2"].run("bridge", "fdb", "show", "dev", "kvx4242").stdout
    assert "00:00:00:00:00:00 dst 10.200.0.1" in fdb and "00:00:00:00:00:00 dst 10.200.0.3" in fdb
    res = lab.kvmnet("h2", "check", str(lab.topology))
    assert res.returncode == 0, res.stdout
    lab.hosts["h2"].sh("bridge fdb del 00:00:00:00:00:00 dev kvx4242 dst 10.200.0.3")
    res = lab.kvmnet("h2", "check", str(lab.topology))
    assert res.returncode == 1 and "fdb:kvx4242:10.200.0.3: flood kvx4242's broadcast" in res.stdout
    assert lab.kvmnet("h2", "apply", str(lab.topology)).returncode == 0
    assert lab.kvmnet("h2", "check", str(lab.topology)).returncode == 0


def test_a_deleted_or_detached_vxlan_device_is_drift_that_apply_repairs(lab):
    h3 = lab.hosts["h3"]
    h3.sh("ip link del kvx4242")
    assert lab.db.fetch("http://10.95.0.10/", timeout=1).startswith("ERROR")  # h3 is cut off
    res = lab.kvmnet("h3", "check", str(lab.topology))
    assert res.returncode == 1 and "link:kvx4242: create VXLAN kvx4242 (VNI 4242, local 10.200.0.3" in res.stdout
    assert lab.kvmnet("h3", "apply", str(lab.topology)).returncode == 0
    assert lab.db.fetch("http://10.95.0.10/") == f"web saw {lab.db.lease['ip']}\n"
    h3.sh("ip link set kvx4242 nomaster")
    res = lab.kvmnet("h3", "check", str(lab.topology))
    assert res.returncode == 1 and "link:kvx4242: set link kvx4242 master kvb-lab" in res.stdout
    assert lab.kvmnet("h3", "apply", str(lab.topology)).returncode == 0
    assert lab.kvmnet("h3", "check", str(lab.topology)).returncode == 0
    assert lab.db.fetch("http://10.95.0.10/") == f"web saw {lab.db.lease['ip']}\n"


def test_a_moved_gateway_is_taken_only_once_the_old_gateway_host_gave_it_up(lab):
    """gateway_host h1 -> h2, applied on h2 first: h2 probes the segment, h1 still answers ARP for
    10.95.0.1, so h2 refuses and changes nothing (two gateways with one MAC and two dnsmasq on one
    segment). Applied on h1 (it gives the gateway up), then on h2: h2 is the gateway."""
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    original = lab.topology.read_text()
    mac = {n: _bridge_mac(lab.hosts[n]) for n in ("h1", "h2")}
    try:
        lab.topology.write_text(original.replace('gateway_host = "h1"', 'gateway_host = "h2"'))
        before = h2.snapshot()
        res = lab.kvmnet("h2", "apply", str(lab.topology))
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"networks.lab.gateway_host: 10.95.0.1 is still answered on the stretched network by {mac['h1']}" \
            in res.stderr
        assert h2.snapshot() == before
        for name in ("h1", "h2"):
            res = lab.kvmnet(name, "apply", str(lab.topology))
            assert res.returncode == 0, res.stdout + res.stderr
        assert lab.db.ns.run("ping", "-c", "1", "-W", "2", "10.95.0.1", check=False).returncode == 0
        # the gateway's MAC is the network's, whichever host serves it: guests' ARP caches stay right
        assert _bridge_mac(h2) == mac["h1"]
        assert _bridge_mac(h1) not in (mac["h1"], "")
        assert h1.run("ip", "-o", "addr", "show", "dev", "kvb-lab").stdout == ""
        assert dhcp_lease(lab.db.ns, "db")["router"] == "10.95.0.1"  # h2's dnsmasq: h1 runs none now
    finally:  # back, in the same order: the old gateway gives it up first
        lab.topology.write_text(original)
        moved_back = [lab.kvmnet(name, "apply", str(lab.topology)) for name in ("h2", "h1")]
    assert [r.returncode for r in moved_back] == [0, 0], [r.stderr for r in moved_back]
    assert lab.web.fetch(f"http://{lab.WAN_PEER}/") == f"wan saw {lab.WAN_HOST}\n"


def _bridge_mac(host) -> str:
    return host.run("cat", "/sys/class/net/kvb-lab/address").stdout.strip()


def test_destroy_on_one_host_leaves_it_as_before_and_the_others_working(lab):
    lab.hosts["h2"].sh("ip link del c-db")  # the stand-in guest leaves first, as a guest's tap would
    res = lab.kvmnet("h2", "destroy", str(lab.topology))
    assert res.returncode == 0, res.stdout + res.stderr
    after = lab.hosts["h2"].snapshot()
    assert after == lab.before["h2"], snapshot_diff(lab.before["h2"], after)
    assert lab.web.fetch(f"http://{lab.WAN_PEER}/") == f"wan saw {lab.WAN_HOST}\n"
    assert _from_wan(lab) == f"web saw {lab.WAN_PEER}\n"
