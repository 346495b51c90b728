"""The seed's NAT network made right, proven end to end in namespaces:
DHCP (dynamic and static), DNS, MASQUERADE outbound, port forwards from the WAN, from the host
itself (its WAN address and 127.0.0.1) and from another guest (hairpin), nothing routed in."""

import json
from pathlib import Path

import pytest

from helpers.natlab import running_lab
from helpers.netns import snapshot_diff

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "data" / "topologies" / "nat-lab.toml"
CANARY = """
table inet canary {
  chain c {
    type filter hook forward priority 0; policy accept;
    ip saddr 1.2.3.4 counter
  }
}
table ip nat {
  chain POSTROUTING {
    type nat hook postrouting priority 100; policy accept;
    ip saddr 10.99.0.0/16 masquerade
  }
}
"""


def _canary(lab):
    lab.host.run("nft", "-f", "-", input=CANARY)
    lab.canary = lab.host.run("nft", "list", "ruleset").stdout


@pytest.fixture(scope="module")
def lab():
    with running_lab(TOPOLOGY, "nftables", _canary) as lab:
        yield lab


def test_static_and_dynamic_leases(lab):
    assert lab.web.lease["ip"] == "192.168.122.10"
    assert lab.web.lease["router"] == "192.168.122.1" and lab.web.lease["dns"] == "192.168.122.1"
    assert lab.web.lease["domain"] == "kvm.lan"
    last = int(lab.other.lease["ip"].rsplit(".", 1)[1])
    assert lab.other.lease["ip"].startswith("192.168.122.") and 100 <= last <= 199
    leases = lab.kvmnet("leases", "--json")
    assert leases.returncode == 0, leases.stderr
    assert {(l["mac"], l["ip"]) for l in json.loads(leases.stdout)["leases"]} >= {("52:54:00:12:34:56", "192.168.122.10")}


def test_dns_answers_from_the_gateway(lab):
    for name, ip in (("web.kvm.lan", "192.168.122.10"), ("files.kvm.lan", "192.168.122.50"), ("files", "192.168.122.50")):
        out = lab.other.ns.run("busybox", "nslookup", name, "192.168.122.1", check=False).stdout
        assert ip in out, out


def test_gateway_answers_ping(lab):
    assert lab.other.ns.run("busybox", "ping", "-c1", "-W2", "192.168.122.1", check=False).returncode == 0


def test_outbound_is_masqueraded(lab):
    assert lab.web.fetch("http://10.0.0.1/") == "wan saw 10.0.0.2\n"


def test_forward_from_the_wan_keeps_the_client_address(lab):
    out = lab.wan.run(*_fetch("http://10.0.0.2:8080/"), check=False).stdout
    assert out == "web saw 10.0.0.1\n"


def test_port_range_forward(lab):
    for host_port, guest_port in ((9000, 80), (9002, 82)):
        assert lab.wan.run(*_fetch(f"http://10.0.0.2:{host_port}/"), check=False).stdout == "web saw 10.0.0.1\n"


def test_forward_from_the_host_itself(lab):
    for url in ("http://127.0.0.1:8080/", "http://10.0.0.2:8080/", "http://127.0.0.1:8081/"):
        out = lab.host.run(*_fetch(url), check=False).stdout
        assert out.startswith("web saw "), (url, out)


def test_hairpin_from_another_guest(lab):
    assert lab.other.fetch("http://10.0.0.2:8080/") == "web saw 192.168.122.1\n"


def test_localhost_only_forward_is_not_reachable_from_the_wan(lab):
    assert "ERROR" in lab.wan.run(*_fetch("http://10.0.0.2:8081/", 1), check=False).stdout


def test_wan_cannot_route_into_the_subnet(lab):
    lab.wan.sh("ip route replace 192.168.122.0/24 via 10.0.0.2")
    try:
        assert "ERROR" in lab.wan.run(*_fetch("http://192.168.122.10/", 1), check=False).stdout
    finally:
        lab.wan.sh("ip route del 192.168.122.0/24")


def test_nothing_answers_dns_on_the_wan_address(lab):
    out = lab.wan.run("busybox", "nslookup", "web.kvm.lan", "10.0.0.2", check=False)
    assert "192.168.122.10" not in out.stdout


def test_reapply_is_a_noop_with_zero_firewall_writes(lab):
    ruleset = lab.host.run("nft", "list", "ruleset").stdout
    handles = lab.host.run("nft", "-a", "list", "table", "inet", "kvmnet_natlab").stdout
    res = lab.apply()
    assert "already in sync" in res.stdout
    assert lab.host.run("nft", "list", "ruleset").stdout == ruleset
    assert lab.host.run("nft", "-a", "list", "table", "inet", "kvmnet_natlab").stdout == handles


def test_foreign_rules_untouched_and_destroy_leaves_no_trace(lab):
    ruleset = lab.host.run("nft", "list", "ruleset").stdout
    for table in ("table inet canary", "table ip nat"):
        assert _table(ruleset, table) == _table(lab.canary, table)
    lab.remove_clients()
    res = lab.kvmnet("destroy", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    after = lab.host.snapshot()
    assert after == lab.before, snapshot_diff(lab.before, after)
    lab.apply()  # leave the lab as the fixture expects for any later test


def _table(ruleset: str, header: str) -> str:
    start = ruleset.index(header)
    return ruleset[start:ruleset.index("\n}\n", start)]


def _fetch(url, timeout=3):
    from helpers.natlab import HELPERS, PY
    return PY, str(HELPERS / "fetch.py"), url, str(timeout)
