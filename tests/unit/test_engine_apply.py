"""The transaction against an in-memory host: apply, no-op re-apply, drift repair, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost, uplinked

from kvmnet import config, engine, naming
from kvmnet.engine import record as records
from kvmnet.errors import HostError, InputError
from kvmnet.host import system

ROOT = Path(__file__).resolve().parents[2]
NAT = ROOT / "topologies" / "nat.toml"
NAT_CONF = "dnsmasq-default.conf"


def load(path) -> object:
    return config.load(str(path))


def steps(host: FakeHost) -> list[tuple[str, str]]:
    """(op, what) for every step the host ran."""
    out = []
    for s in host.ran:
        a = s.args
        what = a.get("name") or a.get("dst") or a.get("dev") or a.get("path") or a.get("cidr") or a.get("network") \
            or a.get("table") or a.get("bridge") or a["route"]["dst"]
        out.append((s.op, what))
    return out


EXPECTED = {
    "nat.toml": [("bridge.add", "virbr0"), ("sysctl.set", "net/ipv6/conf/virbr0/disable_ipv6"),
                 ("addr.add", "192.168.122.1/24"), ("tap.add", "kn-nat-web-0"), ("tap.add", "kn-nat-other-0"),
                 ("sysctl.set", "net/ipv4/ip_forward"), ("sysctl.set", "net/ipv4/conf/virbr0/route_localnet"),
                 ("firewall.apply", "kvmnet_nat"), ("dnsmasq.start", "default")],
    "multihost.toml": [("bridge.add", "kvb-lab"), ("sysctl.set", "net/ipv6/conf/kvb-lab/disable_ipv6"),
                       ("addr.add", "10.95.0.1/24"), ("vxlan.add", "kvx4242"), ("fdb.add", "10.200.0.2"),
                       ("fdb.add", "10.200.0.3"), ("sysctl.set", "net/ipv4/ip_forward"),
                       ("sysctl.set", "net/ipv4/conf/kvb-lab/route_localnet"), ("firewall.apply", "kvmnet_multihost"),
                       ("dnsmasq.start", "lab")],
    "isolated.toml": [("bridge.add", "kvmiso0"), ("sysctl.set", "net/ipv6/conf/kvmiso0/disable_ipv6"),
                      ("addr.add", "10.77.0.1/24"), ("tap.add", "kn-isolated-a-0"), ("tap.add", "kn-isolated-b-0"),
                      ("firewall.apply", "kvmnet_isolated"), ("dnsmasq.start", "lab")],
    "routed.toml": [("bridge.add", "kvmrt0"), ("sysctl.set", "net/ipv6/conf/kvmrt0/disable_ipv6"),
                    ("addr.add", "10.80.0.1/24"), ("tap.add", "kn-routed-db-0"), ("sysctl.set", "net/ipv4/ip_forward"),
                    ("firewall.apply", "kvmnet_routed"), ("dnsmasq.start", "lab")],
    "bridge.toml": [("bridge.add", "br0"), ("link.set", "eth0"), ("addr.add", "192.0.2.10/24"),
                    ("route.del", "default"), ("addr.del", "192.0.2.10/24"), ("route.add", "default"),
                    ("sysctl.set", "net/ipv6/conf/eth0/disable_ipv6"),  # a port: its own IPv6 off
                    ("tap.add", "kn-bridge-vm1-0")],
    "socket.toml": [], "user.toml": [], "passt.toml": [],  # passt: started by `kvmnet run`/`passt start`
    "dual-stack.toml": [step for br, v4, v6 in (("kvmds0", "192.168.124.1/24", "fd00:dead:beef:1::1/64"),
                                                ("kvmds1", "10.78.0.1/24", "fd00:dead:beef:2::1/64")) for step in (
                            ("bridge.add", br), ("sysctl.set", f"net/ipv6/conf/{br}/accept_ra"),
                            ("sysctl.set", f"net/ipv6/conf/{br}/autoconf"),
                            ("sysctl.set", f"net/ipv6/conf/{br}/accept_dad"),
                            ("sysctl.set", f"net/ipv6/conf/{br}/disable_ipv6"), ("addr.add", v4), ("addr.add", v6))]
                        + [("tap.add", "kn907f-web-0"), ("tap.add", "kn907f-db-0"), ("sysctl.set", "net/ipv4/ip_forward"),
                           ("sysctl.set", "net/ipv4/conf/kvmds0/route_localnet"),
                           ("sysctl.set", "net/ipv6/conf/all/forwarding"), ("firewall.apply", "kvmnet_dual_stack"),
                           ("dnsmasq.start", "default"), ("dnsmasq.start", "lab")],
    "antispoof.toml": [("bridge.add", "virbr0"), ("sysctl.set", "net/ipv6/conf/virbr0/disable_ipv6"),
                       ("addr.add", "192.168.122.1/24"), ("tap.add", "c-web"), ("tap.add", "c-other"),
                       ("tap.add", "c-roamer"), ("sysctl.set", "net/ipv4/ip_forward"),
                       ("firewall.apply", "kvmnet_antispoof"), ("dnsmasq.start", "default")],
    "nat-lab.toml": [("bridge.add", "virbr0"), ("sysctl.set", "net/ipv6/conf/virbr0/disable_ipv6"),
                     ("addr.add", "192.168.122.1/24"), ("tap.add", "kn-natlab-web-0"), ("tap.add", "kn8bd3-other-0"),
                     ("sysctl.set", "net/ipv4/ip_forward"), ("sysctl.set", "net/ipv4/conf/virbr0/route_localnet"),
                     ("firewall.apply", "kvmnet_natlab"), ("dnsmasq.start", "default")],
    "bandwidth.toml": [("bridge.add", "kvmbw0"), ("sysctl.set", "net/ipv6/conf/kvmbw0/disable_ipv6"),
                       ("addr.add", "192.168.140.1/24"), ("tap.add", "kn2c72-web-0"), ("tap.add", "kn2c72-batch-0"),
                       ("tc.limit", "kvmbw0"), ("tc.limit", "kvmbw0"), ("tc.limit", "kn2c72-web-0"),
                       ("tc.limit", "kn2c72-web-0"), ("sysctl.set", "net/ipv4/ip_forward"),
                       ("firewall.apply", "kvmnet_bandwidth"), ("dnsmasq.start", "shaped")],
    "direct.toml": [("macvtap.add", "kvmhost0"), ("addr.add", "192.0.2.250/24"), ("macvtap.add", "kn-direct-web-0")],
    "isolation-a.toml": [step for net, n in (("a", 1), ("b", 2), ("c", 3), ("e", 5)) for step in (
                             ("bridge.add", f"kvb-{net}"), ("sysctl.set", f"net/ipv6/conf/kvb-{net}/disable_ipv6"),
                             ("addr.add", f"10.81.{n}.1/24"))]
                        + [("sysctl.set", "net/ipv4/ip_forward"), ("sysctl.set", "net/ipv4/conf/kvb-a/route_localnet"),
                           ("firewall.apply", "kvmnet_isola")]
                        + [("dnsmasq.start", net) for net in "abce"],
    "isolation-b.toml": [("bridge.add", "kvb-d"), ("sysctl.set", "net/ipv6/conf/kvb-d/disable_ipv6"),
                         ("addr.add", "10.81.4.1/24"), ("sysctl.set", "net/ipv4/ip_forward"),
                         ("sysctl.set", "net/ipv4/conf/kvb-d/route_localnet"),
                         ("firewall.apply", "kvmnet_isolb"), ("dnsmasq.start", "d")],
    "nat6.toml": [step for br, v4, v6 in (("kn6m", "10.66.0.1/24", "fd00:66::1/64"), ("kn6r", "10.67.0.1/24", "fd00:67::fe/64"))
                  for step in (("bridge.add", br), ("sysctl.set", f"net/ipv6/conf/{br}/accept_ra"),
                               ("sysctl.set", f"net/ipv6/conf/{br}/autoconf"), ("sysctl.set", f"net/ipv6/conf/{br}/accept_dad"),
                               ("sysctl.set", f"net/ipv6/conf/{br}/disable_ipv6"), ("addr.add", v4), ("addr.add", v6))]
                 + [("bridge.add", "kn6i"), ("sysctl.set", "net/ipv6/conf/kn6i/disable_ipv6"), ("addr.add", "10.68.0.1/24"),
                    ("tap.add", "kn-nat6-web-0"), ("sysctl.set", "net/ipv4/ip_forward"),
                    ("sysctl.set", "net/ipv4/conf/kn6m/route_localnet"), ("sysctl.set", "net/ipv6/conf/all/forwarding"),
                    ("firewall.apply", "kvmnet_nat6"), ("dnsmasq.start", "masq"), ("dnsmasq.start", "rt")],
    "seed-qemu.toml": [("bridge.add", "virbr0"), ("sysctl.set", "net/ipv6/conf/virbr0/disable_ipv6"),
                       ("addr.add", "192.168.122.1/24"), ("tap.add", "kn2a89-fast-0"), ("tap.add", "kn772fd2a5-0"),
                       ("sysctl.set", "net/ipv4/ip_forward"), ("firewall.apply", "kvmnet_seed_qemu"),
                       ("dnsmasq.start", "default"), ("qemuacl.add", "virbr0"), ("vde.start", "switch")],
}
FILES = sorted((ROOT / "topologies").glob("*.toml")) + sorted((ROOT / "tests/data/topologies").glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_apply_on_an_empty_host_then_reapply_is_a_no_op(path, tmp_path):
    host = uplinked().with_nic("eth1", "52:54:00:00:00:02", ["10.200.0.1/24"])  # h1 of multihost.toml
    topo = load(path)
    result = engine.apply(topo, str(tmp_path), host=host)
    assert steps(host) == EXPECTED[path.name]
    assert [a.do for a in result.actions] == host.ran
    ran = len(host.ran)
    assert engine.apply(topo, str(tmp_path), host=host).actions == []
    assert len(host.ran) == ran
    assert engine.compute(topo, str(tmp_path), host=host)[2] == []


def test_apply_records_every_undo_and_the_hook_index(tmp_path):
    host = uplinked()
    engine.apply(load(NAT), str(tmp_path), host=host)
    rec = records.load(str(tmp_path), "nat")
    assert rec.file == str(NAT) and rec.firewall_backend == "nftables"
    undo = dict((k, u and u["op"]) for k, u in rec.entries)
    assert undo == {"link:virbr0": "link.del", "sysctl:net/ipv6/conf/virbr0/disable_ipv6": None,
                    "addr:virbr0:192.168.122.1/24": "addr.del", "link:kn-nat-web-0": "link.del",
                    "link:kn-nat-other-0": "link.del", "sysctl:net/ipv4/ip_forward": "sysctl.set",
                    "sysctl:net/ipv4/conf/virbr0/route_localnet": None,
                    "firewall:nftables:kvmnet_nat": "firewall.delete", "dnsmasq:nat:default": "dnsmasq.stop"}
    assert rec.networks == {"default": {"bridge": "virbr0", "mode": "nat"}}
    assert rec.taps == {"kn-nat-web-0": "default", "kn-nat-other-0": "default"}
    hooks = (tmp_path / "nat" / "hooks").read_text()
    assert hooks == f"file {NAT}\nnetwork default virbr0\ntap kn-nat-other-0 default\ntap kn-nat-web-0 default\n"


def _break(host: FakeHost, damage: str) -> None:
    if damage == "deleted bridge":
        host._link_del({"name": "virbr0"})
    elif damage == "detached tap":
        host.links_["kn-nat-web-0"]["master"] = None
    elif damage == "changed table":
        host.nft_tables[("inet", "kvmnet_nat")]["chains"]["forward"]["rules"].pop()
    elif damage == "dead dnsmasq":
        host.dnsmasqs.clear()
    elif damage == "tap down":
        host.links_["kn-nat-web-0"]["up"] = False
    elif damage == "bridge mtu":
        host.links_["virbr0"].update(mtu=1400, stp=False, forward_delay=7, mac="02:00:00:00:00:99", up=False)
    elif damage == "forwarding off":
        host.sysctls["net/ipv4/ip_forward"] = "0"


# a re-created bridge has a new ifindex: dnsmasq's DHCP socket still names the old one, so it restarts
REPAIRS = {"deleted bridge": ["bridge.add", "sysctl.set", "addr.add", "link.set", "link.set", "sysctl.set",
                              "dnsmasq.start"],
           "detached tap": ["link.set"], "changed table": ["firewall.apply"], "dead dnsmasq": ["dnsmasq.start"],
           "tap down": ["link.set"], "bridge mtu": ["link.set"], "forwarding off": ["sysctl.set"]}


@pytest.mark.parametrize("damage", sorted(REPAIRS))
def test_drift_is_seen_and_repaired(damage, tmp_path):
    host, topo = uplinked(), load(NAT)
    engine.apply(topo, str(tmp_path), host=host)
    synced = host.state()
    _break(host, damage)
    assert engine.compute(topo, str(tmp_path), host=host)[2] != []
    host.ran.clear()
    engine.apply(topo, str(tmp_path), host=host)
    assert host.ops() == REPAIRS[damage]
    assert engine.compute(topo, str(tmp_path), host=host)[2] == []
    if damage in ("detached tap", "changed table", "tap down", "forwarding off"):
        assert host.state() == synced


def test_a_changed_table_is_listed_once_and_its_rollback_restores_it(tmp_path, monkeypatch):
    host, topo = uplinked(), load(NAT)
    engine.apply(topo, str(tmp_path), host=host)
    host.nft_tables[("inet", "kvmnet_nat")]["chains"]["forward"]["rules"].pop()
    listings = []
    real = host.firewall_listing
    monkeypatch.setattr(host, "firewall_listing", lambda t: listings.append(t) or real(t))
    host.dnsmasqs.clear()
    damaged = host.state()
    host.fail(at=1)  # the firewall loads, then the restart of dnsmasq fails
    with pytest.raises(HostError) as exc:
        engine.apply(topo, str(tmp_path), host=host)
    assert listings == ["kvmnet_nat"]
    assert str(exc.value).startswith("apply failed at step 2 (start dnsmasq for default on virbr0): fake host:")
    assert host.state() == damaged  # the damaged table is back, exactly as it was
    assert engine.compute(topo, str(tmp_path), host=host)[2] != []


def test_plan_and_check_never_list_the_table(tmp_path, monkeypatch):
    host, topo = uplinked(), load(NAT)
    engine.apply(topo, str(tmp_path), host=host)
    host.nft_tables[("inet", "kvmnet_nat")]["chains"]["forward"]["rules"].pop()
    monkeypatch.setattr(host, "firewall_listing", lambda t: pytest.fail("listed"))
    ctx = engine.Context(topo, str(tmp_path), host=host)
    [action] = ctx.actions
    assert action.undo.args["listing"] == "kvmnet_nat" and action.undo.command() == "nft -f -  # the previous ruleset"


@pytest.mark.parametrize("n", range(len(EXPECTED["nat.toml"])))
def test_a_failure_at_every_step_rolls_back_exactly(n, tmp_path):
    host, topo = uplinked(), load(NAT)
    host.sysctls["net/ipv4/ip_forward"] = "0"
    before = host.state()
    host.fail(at=n)
    with pytest.raises(HostError) as exc:
        engine.apply(topo, str(tmp_path), host=host)
    assert str(exc.value).startswith(f"apply failed at step {n + 1} (")
    assert "could not undo" not in str(exc.value)
    assert host.state() == before
    assert not (tmp_path / "nat" / "state.json").exists()


def test_a_failed_reapply_restores_the_record(tmp_path):
    host, topo = uplinked(), load(NAT)
    engine.apply(topo, str(tmp_path), host=host)
    saved = (tmp_path / "nat" / "state.json").read_text()
    host._link_del({"name": "kn-nat-web-0"})
    host.fail(op="tap.add")
    with pytest.raises(HostError):
        engine.apply(topo, str(tmp_path), host=host)
    assert (tmp_path / "nat" / "state.json").read_text() == saved


def test_an_undo_that_fails_stays_in_the_record(tmp_path):
    host, topo = uplinked(), load(NAT)
    host.fail(at=2)  # addr.add on virbr0; its undo runs (the step may have half happened), then the bridge's
    host.fail(op="link.del")  # ... which fails
    with pytest.raises(HostError) as exc:
        engine.apply(topo, str(tmp_path), host=host)
    assert str(exc.value).endswith("could not undo: link:virbr0 (kept in the record for destroy)")
    rec = records.load(str(tmp_path), "nat")
    assert rec.entries == [["link:virbr0", {"op": "link.del", "args": {"name": "virbr0"}}]]
    assert "virbr0" in host.links_ and "192.168.122.1/24" not in host.addrs_.get("virbr0", set())
    engine.destroy("nat", str(tmp_path), host=host)
    assert "virbr0" not in host.links_ and not (tmp_path / "nat").exists()


def test_a_host_that_does_not_take_a_change_fails_verification(tmp_path, monkeypatch):
    host, topo = uplinked(), load(NAT)
    before = host.state()
    monkeypatch.setattr(host, "_dnsmasq_start", lambda a: None)  # "started", yet never runs
    with pytest.raises(HostError) as exc:
        engine.apply(topo, str(tmp_path), host=host)
    assert str(exc.value).startswith("apply failed at step 9 (start dnsmasq for default on virbr0): "
                                     "after apply the host still differs: start dnsmasq for default on virbr0")
    assert host.state() == before


def test_the_default_host_is_the_one_system_default_returns(tmp_path, monkeypatch):
    host = uplinked()
    monkeypatch.setattr(system, "default", lambda: host)
    engine.apply(load(NAT), str(tmp_path))
    assert "virbr0" in host.links_
    engine.destroy("nat", str(tmp_path))
    assert "virbr0" not in host.links_


def test_system_default_is_one_real_host():
    assert isinstance(system.default(), system.System) and system.default() is system.default()


def test_a_second_topology_sharing_ip_forward_records_it_without_a_step(tmp_path):
    host = uplinked()
    engine.apply(load(NAT), str(tmp_path), host=host)
    host.ran.clear()
    engine.apply(load(ROOT / "topologies" / "routed.toml"), str(tmp_path), host=host)
    assert "sysctl.set" not in [s.op for s in host.ran if s.args.get("path") == "net/ipv4/ip_forward"]
    rec = records.load(str(tmp_path), "routed")
    assert ["sysctl:net/ipv4/ip_forward", None] in rec.entries


def test_a_drop_policy_forward_chain_gets_accepts_that_go_with_the_topology(tmp_path):
    host, topo = uplinked(), load(NAT)
    host.forward = {"policy": "DROP", "rules": ["-A FORWARD -j DOCKER-USER"]}
    before = host.state()
    engine.apply(topo, str(tmp_path), host=host)
    assert host.forward["rules"] == [
        '-A FORWARD -i virbr0 -m comment --comment "kvmnet nat" -j ACCEPT',
        '-A FORWARD -o virbr0 -m comment --comment "kvmnet nat" -j ACCEPT', "-A FORWARD -j DOCKER-USER"]
    assert engine.compute(topo, str(tmp_path), host=host)[2] == []
    engine.destroy("nat", str(tmp_path), host=host)
    assert host.state() == before


def test_an_ip6tables_drop_policy_gets_accepts_for_the_ipv6_networks_only(tmp_path):
    """Docker 27 sets the ip6tables FORWARD policy to DROP as well: a network with IPv6 gets its
    accepts there; an IPv4-only one reads no ip6tables at all."""
    host, topo = uplinked(), load(ROOT / "topologies" / "dual-stack.toml")
    host.forward6 = {"policy": "DROP", "rules": ["-A FORWARD -j DOCKER-USER"]}
    before = host.state()
    engine.apply(topo, str(tmp_path), host=host)
    # the nat network's; the isolated one's guests meet ip6tables only with br_netfilter's call-ip6tables
    bridges = [n.bridge for n in topo.networks if n.mode == "nat" and n.subnet6 is not None]
    assert bridges and host.forward6["rules"] == [
        f'-A FORWARD -{d} {br} -m comment --comment "kvmnet dual_stack" -j ACCEPT' for br in bridges for d in "io"
    ] + ["-A FORWARD -j DOCKER-USER"]
    assert host.forward["rules"] == []  # the iptables FORWARD accepts: its policy is ACCEPT
    assert engine.compute(topo, str(tmp_path), host=host)[2] == []
    host.forward6["rules"] = ["-A FORWARD -j DOCKER-USER"]  # someone flushes them: put back
    assert [a.do.op for a in engine.apply(topo, str(tmp_path), host=host).actions] == ["fwaccept.add"] * len(bridges)
    engine.destroy("dual_stack", str(tmp_path), host=host)
    assert host.state() == before
    v4only = uplinked()
    v4only.forward6["policy"] = "DROP"
    engine.apply(load(NAT), str(tmp_path / "v4"), host=v4only)
    assert v4only.forward6["rules"] == [] and v4only.forward_reads and not any(v4only.forward_reads)


def test_isolated_guests_ipv6_between_ports_under_br_netfilter_and_an_ip6tables_drop(tmp_path):
    host, topo = FakeHost(), load(ROOT / "topologies" / "isolated.toml")
    host.forward6["policy"] = "DROP"
    engine.apply(topo, str(tmp_path), host=host)
    assert host.forward6["rules"] == []  # bridged frames meet ip6tables only with call-ip6tables
    host.sysctls["net/bridge/bridge-nf-call-ip6tables"] = "1"
    engine.apply(topo, str(tmp_path), host=host)
    assert host.forward6["rules"] == ['-A FORWARD -i kvmiso0 -o kvmiso0 -m comment --comment "kvmnet isolated" -j ACCEPT']
    engine.destroy("isolated", str(tmp_path), host=host)
    assert host.forward6["rules"] == []


def test_a_nat_network_without_ipv6_keeps_its_guests_link_local_ipv6_under_br_netfilter(tmp_path):
    """No kvmnet ip6 rule accepts its guests' bridged IPv6 (neighbour discovery, link-local
    traffic between them): with bridge-nf-call-ip6tables=1 Docker's ip6tables DROP would take it."""
    host, topo = uplinked(), load(NAT)
    host.forward6["policy"] = "DROP"
    host.sysctls["net/bridge/bridge-nf-call-ip6tables"] = "1"
    engine.apply(topo, str(tmp_path), host=host)
    assert host.forward6["rules"] == ['-A FORWARD -i virbr0 -o virbr0 -m comment --comment "kvmnet nat" -j ACCEPT']
    assert host.forward_reads[0] is True
    engine.destroy("nat", str(tmp_path), host=host)
    assert host.forward6["rules"] == []


class CountingHost(FakeHost):
    """A host that counts reads of its FORWARD chain (each one an `iptables` process)."""
    reads = 0

    def host_forward(self, ipv6: bool = False) -> dict:
        self.reads += 1
        return super().host_forward(ipv6)


@pytest.mark.parametrize("policy, reads", [("ACCEPT", 1), ("DROP", 2)])
def test_verify_reads_the_forward_chain_again_only_when_a_step_changed_it(tmp_path, policy, reads):
    host = CountingHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    host.forward["policy"] = policy
    engine.apply(load(NAT), str(tmp_path), host=host)
    assert host.reads == reads  # observe, and after fwaccept steps the verify too
    host.forward["rules"].clear()  # someone removes kvmnet's accepts: the next apply sees it
    assert bool(engine.apply(load(NAT), str(tmp_path), host=host).actions) == (policy == "DROP")


def test_bridge_mode_accepts_bridged_frames_when_br_netfilter_sees_them(tmp_path):
    host = uplinked()
    host.forward["policy"] = "DROP"
    host.sysctls["net/bridge/bridge-nf-call-iptables"] = "1"
    engine.apply(load(ROOT / "topologies" / "bridge.toml"), str(tmp_path), host=host)
    assert host.forward["rules"] == ['-A FORWARD -i br0 -o br0 -m comment --comment "kvmnet bridge" -j ACCEPT']
    assert host.links_["br0"]["mac"] == "52:54:00:00:00:01" and host.links_["eth0"]["master"] == "br0"
    assert host.addrs_["br0"] == {"192.0.2.10/24"} and not host.addrs_["eth0"]


def test_the_iptables_backend_on_a_host_without_nft(tmp_path):
    host, topo = FakeHost(nft=False), load(ROOT / "topologies" / "isolated.toml")
    before = host.state()
    engine.apply(topo, str(tmp_path), host=host)
    [(prefix, ruleset)] = host.ipt_tables.items()
    assert prefix == naming.iptables_prefix("isolated") and ruleset["format"] == "kvmnet-iptables/2"
    assert records.load(str(tmp_path), "isolated").firewall_backend == "iptables"
    assert engine.apply(topo, str(tmp_path), host=host).actions == []
    engine.destroy("isolated", str(tmp_path), host=host)
    assert host.state() == before


def test_a_changed_iptables_ruleset_rolls_back_to_the_saved_one(tmp_path):
    host = FakeHost(nft=False)
    engine.apply(load(ROOT / "topologies" / "isolated.toml"), str(tmp_path), host=host)
    host.ipt_tables[naming.iptables_prefix("isolated")]["digest"] = "tampered"
    host.fail(at=1)
    host.dnsmasqs.clear()
    tampered = host.state()
    with pytest.raises(HostError):
        engine.apply(load(ROOT / "topologies" / "isolated.toml"), str(tmp_path), host=host)
    assert host.state() == tampered


@pytest.mark.parametrize("wanted, nft, problem, expected", [
    (None, True, None, "nftables"), (None, False, None, "iptables"), ("iptables", True, None, "iptables"),
    ("nftables", False, None, "the nftables backend was asked for, but `nft` is not installed (apt-get install nftables)"),
    ("iptables", True, "no legacy iptables here", "no legacy iptables here")])
def test_backend_choice(wanted, nft, problem, expected, tmp_path):
    host = FakeHost(nft=nft, iptables_problem=problem)
    topo = load(ROOT / "topologies" / "isolated.toml")
    if expected in ("nftables", "iptables"):
        assert engine.Context(topo, str(tmp_path), wanted, host=host).backend == expected
    else:
        with pytest.raises(InputError) as exc:
            engine.Context(topo, str(tmp_path), wanted, host=host)
        assert str(exc.value) == expected


def test_a_run_that_only_changes_writes_ahead_what_it_says_about_its_file(tmp_path, monkeypatch):
    """A run whose plan adds no key (here one forward's guest port: an element delta) writes no
    record before its first step, unless the record then says something new: applied from
    another file (--replace), the record names it before the first step runs (QEMU's hooks and
    a later apply without --replace read it); from the same file, only the run's end writes it."""
    import json

    state, host = tmp_path / "state", uplinked()
    first, other = tmp_path / "a" / "nat.toml", tmp_path / "b" / "nat.toml"
    for path in (first, other):
        path.parent.mkdir()
    first.write_text(NAT.read_text())
    engine.apply(load(first), str(state), host=host)
    seen = []
    run = host.run
    host.run = lambda step: seen.append(json.loads((state / "nat" / "state.json").read_text())["file"]) or run(step)
    edited = NAT.read_text().replace("guest_port = 80", "guest_port = 81")
    assert edited != NAT.read_text()
    other.write_text(edited)
    result = engine.apply(load(other), str(state), host=host, replace=True)
    assert [a.do.op for a in result.actions] == ["firewall.elements"] and seen[0] == str(other)
    seen.clear()
    other.write_text(NAT.read_text())  # back, from the same file: nothing new to say before the step
    saves = []
    save = records.save
    monkeypatch.setattr(records, "save", lambda *a: saves.append(len(seen)) or save(*a))
    result = engine.apply(load(other), str(state), host=host)
    assert [a.do.op for a in result.actions] == ["firewall.elements"] and saves == [1]
