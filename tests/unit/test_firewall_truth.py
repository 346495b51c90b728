"""kvmnet's firewall must hold exactly what kvmnet wrote (issue 11, items 6 and 7), planned
against an in-memory host: drift that keeps every count and comment is seen and repaired, and a
table or chains of kvmnet's name that kvmnet did not create are refused before any change."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost, uplinked

from kvmnet import config, engine, naming
from kvmnet.engine import record as records
from kvmnet.errors import HostError, InputError

ROOT = Path(__file__).resolve().parents[2]
NAT = ROOT / "topologies" / "nat.toml"
TABLE = "kvmnet_nat"
PREFIX = naming.iptables_prefix("nat")


def applied(tmp_path, **kw) -> tuple[FakeHost, object]:
    host, topo = uplinked(**kw), config.load(str(NAT))
    engine.apply(topo, str(tmp_path), host=host)
    return host, topo


def drift(host, topo, tmp_path) -> list[str]:
    return [f"{a.key}: {a.do.describe()}" for a in engine.compute(topo, str(tmp_path), host=host)[2]]


# ---- nftables: the table's content against the digest recorded right after kvmnet's load

def _policy_drop_chain(host):
    host.nft_tables[("inet", TABLE)]["chains"]["sneaky"] = {
        "head": ["type filter hook forward priority 10; policy drop;"], "rules": []}


def _repointed_forward(host):
    elements = host.nft_tables[("inet", TABLE)]["maps"]["fwd_any"]["elements"]
    [i] = [i for i, e in enumerate(elements) if e.startswith("tcp . 8080 :")]
    elements[i] = "tcp . 8080 : 192.168.122.66 . 22"


def _reject_made_accept(host):
    rules = host.nft_tables[("inet", TABLE)]["chains"]["forward"]["rules"]
    i = next(i for i, r in enumerate(rules) if r.startswith('oifname "virbr0" reject'))
    rules[i] = rules[i].replace("reject with icmpx type admin-prohibited", "accept")


@pytest.mark.parametrize("tamper", [_policy_drop_chain, _repointed_forward, _reject_made_accept],
                         ids=["policy-drop-chain", "repointed-forward", "reject-made-accept"])
def test_nft_content_drift_is_seen_and_repaired(tamper, tmp_path):
    host, topo = applied(tmp_path)
    synced = host.state()
    tamper(host)
    # a map's elements are compared apart from the rest of the table (element deltas change them)
    why = "its forwards are not" if tamper is _repointed_forward else "its content differs from"
    assert drift(host, topo, tmp_path) == [
        f"firewall:nftables:{TABLE}: load firewall rules (nftables: table inet {TABLE}, 19 rules, 1 forwards; "
        f"{why} what kvmnet loaded)"]
    host.ran.clear()
    engine.apply(topo, str(tmp_path), host=host)
    assert host.ops() == ["firewall.apply"] and host.state() == synced
    assert drift(host, topo, tmp_path) == []


def test_the_digest_of_the_loaded_table_is_recorded_and_a_noop_apply_lists_nothing(tmp_path, monkeypatch):
    host, topo = applied(tmp_path)
    recorded = records.load(str(tmp_path), "nat").content
    assert recorded == {f"firewall:nftables:{TABLE}": host.firewall(TABLE, "nftables", False)["content"]}
    monkeypatch.setattr(host, "firewall_listing", lambda t: pytest.fail("a no-op apply listed the table"))
    host.ran.clear()
    assert engine.apply(topo, str(tmp_path), host=host).actions == [] and host.ran == []
    engine.destroy("nat", str(tmp_path), host=host)
    assert records.load(str(tmp_path), "nat").content == {}


def test_a_record_without_a_digest_is_repaired_once(tmp_path):
    """A record written before digests were kept: the table is reloaded once, then trusted."""
    host, topo = applied(tmp_path)
    rec = records.load(str(tmp_path), "nat")
    rec.content.clear()
    records.save(str(tmp_path), rec)
    assert [k.split(":")[0] for k in drift(host, topo, tmp_path)] == ["firewall"]
    engine.apply(topo, str(tmp_path), host=host)
    assert drift(host, topo, tmp_path) == []


def test_a_failed_change_keeps_the_recorded_digest_of_the_restored_table(tmp_path):
    host, topo = applied(tmp_path)
    before, recorded = host.state(), records.load(str(tmp_path), "nat").content
    changed = tmp_path / "nat.toml"
    changed.write_text(NAT.read_text().replace('domain = "kvm.lan"', 'domain = "other.lan"')
                       + '\n[[networks.default.forwards]]\nhost_port = 2222\nguest = "web"\nguest_port = 22\n')
    host.fail(op="dnsmasq.start")  # the new table loads, then the dnsmasq restart fails
    with pytest.raises(HostError):
        engine.apply(config.load(str(changed)), str(tmp_path), host=host, replace=True)
    assert host.state()["nft"] == before["nft"] and records.load(str(tmp_path), "nat").content == recorded
    assert drift(host, topo, tmp_path) == []
    _reject_made_accept(host)
    assert drift(host, topo, tmp_path) != []


# ---- iptables: the chains read back against the rendered rules, argument for argument

def _ipt_reject_made_accept(host):
    rules = host.ipt_tables[PREFIX]["tables"]["filter"]["chains"][f"{PREFIX}-FWD"]
    i = next(i for i, r in enumerate(rules) if r[:2] == ["-o", "virbr0"] and "REJECT" in r)
    rules[i] = rules[i][:rules[i].index("-j")] + ["-j", "ACCEPT"]


def _ipt_repointed_forward(host):
    rules = host.ipt_tables[PREFIX]["tables"]["nat"]["chains"][f"{PREFIX}-PRE"]
    i = next(i for i, r in enumerate(rules) if "192.168.122.10:80" in r)
    rules[i] = [w.replace("192.168.122.10:80", "192.168.122.66:22") for w in rules[i]]


@pytest.mark.parametrize("tamper", [_ipt_reject_made_accept, _ipt_repointed_forward],
                         ids=["reject-made-accept", "repointed-forward"])
def test_iptables_content_drift_is_seen_and_repaired(tamper, tmp_path):
    host, topo = applied(tmp_path, nft=False)
    synced = host.state()
    tamper(host)
    assert [d.split(":")[:2] for d in drift(host, topo, tmp_path)] == [["firewall", "iptables"]]
    engine.apply(topo, str(tmp_path), host=host)
    assert host.state() == synced and drift(host, topo, tmp_path) == []


# ---- tables and chains of kvmnet's name that kvmnet did not create

FOREIGN = {"chains": {"input": {"head": ["type filter hook input priority 0; policy accept;"],
                                "rules": ['tcp dport 22 accept comment "sshd"']}}, "maps": {}}


def _refused(host, topo, tmp_path) -> str:
    before = host.state()
    host.ran.clear()
    for run in (lambda: engine.Context(topo, str(tmp_path), host=host),
                lambda: engine.apply(topo, str(tmp_path), host=host)):
        with pytest.raises(InputError) as exc:
            run()
    assert host.state() == before and host.ran == []
    return str(exc.value)


@pytest.mark.parametrize("family", ["inet", "bridge"])
def test_a_foreign_table_of_kvmnets_name_is_a_conflict(family, tmp_path):
    host, topo = uplinked(), config.load(str(NAT))
    host.nft_tables[(family, TABLE)] = FOREIGN
    assert _refused(host, topo, tmp_path) == (
        f"topologies/nat.toml:3: networks.default: table {family} {TABLE} already exists on this host and kvmnet "
        "has no record of creating it; remove it or rename the topology (`name = ...`)").replace(
        "topologies/nat.toml", str(NAT))


def test_kvmnets_own_table_without_its_record_is_a_conflict_with_a_way_out(tmp_path):
    host, topo = applied(tmp_path)
    records.remove(str(tmp_path), "nat")
    message = _refused(host, topo, tmp_path)
    assert f"table inet {TABLE} already exists on this host and kvmnet has no record of creating it" in message
    assert "`kvmnet destroy --force FILE` removes it" in message


def test_a_recorded_table_holding_only_foreign_rules_is_a_conflict(tmp_path):
    host, topo = applied(tmp_path)
    host.nft_tables[("inet", TABLE)] = FOREIGN
    assert _refused(host, topo, tmp_path).endswith(
        f"networks.default: table inet {TABLE} holds rules kvmnet did not write (none carries kvmnet's comment); "
        "remove it or rename the topology (`name = ...`)")


def test_foreign_iptables_chains_of_kvmnets_name_are_a_conflict(tmp_path):
    host, topo = uplinked(nft=False), config.load(str(NAT))
    host.ipt_tables[PREFIX] = {"format": "kvmnet-iptables/2", "name": PREFIX, "digest": None,
                               "tables": {"filter": {"chains": {f"{PREFIX}-FWD": [["-j", "ACCEPT"]]}, "jumps": {}}}}
    # (the fake's verdict counts no rules: the real one names the chains, see the netns test)
    assert f"iptables chains {PREFIX}-* already exist on this host and kvmnet has no record of creating it" \
        in _refused(host, topo, tmp_path)
