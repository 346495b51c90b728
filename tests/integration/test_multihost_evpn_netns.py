"""The stretched network with the EVPN control plane, in namespaces: each host runs kvmnet's
own FRR (zebra + bgpd, files in its state dir); the iBGP sessions come up, a guest MAC on h3
reaches h2's VXLAN FDB from BGP (extern_learn, not flooded and learned), DHCP and NAT work over it,
a fourth host joins by being added to the file, and destroy stops FRR and leaves nothing."""

import json
import time
from pathlib import Path

import pytest

from helpers.multihost import MultiHost
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
THREE = Path(__file__).resolve().parents[1] / "data" / "multihost" / "three.toml"
WEB_MAC, DB_MAC = "52:54:00:12:34:56", "52:54:00:00:00:22"
FRR = Path("/usr/lib/frr/bgpd")


def _text(extra_host: bool = False) -> str:
    text = THREE.read_text().replace('control = "static"', 'control = "evpn"')
    text = text.replace('ip = "10.95.0.10" }', f'ip = "10.95.0.10", mac = "{WEB_MAC}" }}')
    text = text.replace('{ network = "lab" }', f'{{ network = "lab", mac = "{DB_MAC}" }}')
    if extra_host:
        text = text.replace("[networks.lab]", '[hosts.h4]\nunderlay = "10.200.0.4"\n\n[networks.lab]')
    return text


def _status(lab, host: str) -> dict:
    res = lab.kvmnet(host, "status", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["topologies"][0]["overlay"]


def _wait(what, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        got = what()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _established(lab, host: str, peers: int) -> bool:
    sessions = _status(lab, host)["bgp"]
    return len(sessions) == peers and all(s["state"] == "Established" for s in sessions)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not FRR.exists():
        pytest.skip("needs Debian's frr (scripts/test installs it)")
    topo = tmp_path_factory.mktemp("evpn") / "multihost.toml"
    topo.write_text(_text())
    lab = MultiHost(topo)
    try:
        lab.before = {name: ns.snapshot() for name, ns in lab.hosts.items()}
        for name in ("h1", "h2", "h3"):
            res = lab.kvmnet(name, "apply", str(topo))
            assert res.returncode == 0, res.stdout + res.stderr
        started = time.monotonic()
        for name in ("h1", "h2", "h3"):
            assert _wait(lambda: _established(lab, name, 2)), _status(lab, name)
        lab.converged = time.monotonic() - started
        lab.web = lab.add_client("h3", "web", WEB_MAC, "kvb-lab")
        lab.db = lab.add_client("h2", "db", DB_MAC, "kvb-lab")
        yield lab
    finally:
        lab.close()


def test_sessions_are_established_between_every_pair_of_hosts(lab):
    assert [s["peer"] for s in _status(lab, "h2")["bgp"]] == ["10.200.0.1", "10.200.0.3"]
    assert lab.converged < 15


def test_h2_learns_the_guest_mac_on_h3_from_bgp(lab):
    def learned():
        macs = _status(lab, "h2")["networks"]["lab"]["remote_macs"]
        return [m for m in macs if m["mac"] == WEB_MAC]
    assert _wait(learned) == [{"mac": WEB_MAC, "dst": "10.200.0.3", "extern_learn": True}]
    fdb = lab.hosts["h2"].run("bridge", "fdb", "show", "dev", "kvx4242").stdout
    assert f"{WEB_MAC} dst 10.200.0.3 self extern_learn" in fdb
    assert "00:00:00:00:00:00 dst 10.200.0.1" in fdb and "00:00:00:00:00:00 dst 10.200.0.3" in fdb  # type 3, from BGP


def test_dhcp_nat_and_a_df_ping_work_over_evpn(lab):
    assert lab.web.lease["ip"] == "10.95.0.10" and lab.web.lease["mtu"] == "1450"
    assert lab.db.fetch("http://10.95.0.10/") == f"web saw {lab.db.lease['ip']}\n"
    assert lab.db.fetch(f"http://{lab.WAN_PEER}/") == f"wan saw {lab.WAN_HOST}\n"
    ping = lab.db.ns.run("ping", "-M", "do", "-s", "1400", "-c", "1", "-W", "2", "10.95.0.10", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert lab.kvmnet("h2", "check", str(lab.topology)).returncode == 0


def test_a_fourth_host_joins_by_being_added_to_the_file(lab):
    lab.hosts["h4"] = lab.add_host("h4")
    lab.topology.write_text(_text(extra_host=True))
    for name in ("h1", "h2", "h3", "h4"):
        res = lab.kvmnet(name, "apply", str(lab.topology))
        assert res.returncode == 0, res.stdout + res.stderr
    assert _wait(lambda: _established(lab, "h4", 3)), _status(lab, "h4")
    client = lab.add_client("h4", "c4", "52:54:00:00:00:44", "kvb-lab", serve=False)
    assert client.lease["router"] == "10.95.0.1"
    assert _wait(lambda: client.fetch("http://10.95.0.10/").startswith("web saw"))


def test_destroy_stops_frr_and_leaves_the_host_as_before(lab):
    lab.hosts["h2"].sh("ip link del c-db")
    res = lab.kvmnet("h2", "destroy", str(lab.topology))
    assert res.returncode == 0, res.stdout + res.stderr
    after = lab.hosts["h2"].snapshot()
    assert after == lab.before["h2"], snapshot_diff(lab.before["h2"], after)
    assert lab.web.fetch(f"http://{lab.WAN_PEER}/") == f"wan saw {lab.WAN_HOST}\n"


def test_a_second_evpn_topology_on_a_host_is_refused_before_any_change(lab, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(_text().replace('name = "multihost"', 'name = "other"').replace("kvb-lab", "kvb-oth")
                     .replace("vni = 4242", "vni = 4343").replace("10.95.0", "10.96.0"))
    h3 = lab.hosts["h3"]
    before = h3.snapshot()
    res = lab.kvmnet("h3", "apply", str(other))
    assert res.returncode == 2 and "networks.lab.vxlan.control: another bgpd runs in this network namespace: " in res.stderr
    assert f"({h3.state_dir}/multihost/frr/bgpd.conf); kvmnet runs one EVPN instance per host" in res.stderr
    assert h3.snapshot() == before
