"""The verify after a small change reads back the links its steps touched, not all of them
(engine/observe.touched_links), and still catches a step that did not do what it said."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost, uplinked

from kvmnet import config, engine
from kvmnet.engine.observe import VERIFY_LINKS_MAX, touched_links
from kvmnet.engine.steps import Step
from kvmnet.errors import HostError
from kvmnet.observed import Link

ROOT = Path(__file__).resolve().parents[2]
NAT = ROOT / "topologies" / "nat.toml"
EXTRA = '\n[guests.extra]\n[[guests.extra.nics]]\nnetwork = "default"\nip = "192.168.122.77"\n'


def _apply(tmp_path, text: str, host):
    path = tmp_path / "nat.toml"
    path.write_text(text)
    return engine.apply(config.load(str(path)), str(tmp_path / "state"), host=host)


def _link(name: str, master: str | None = None, index: int = 1) -> Link:
    return Link(name=name, index=index, kind="tun", mtu=1500, up=True, master=master, mac="52:54:00:00:00:01")


def test_adding_a_guest_reads_back_its_tap_and_its_bridge_only(tmp_path):
    host = uplinked()
    _apply(tmp_path, NAT.read_text(), host)
    host.link_reads.clear()
    result = _apply(tmp_path, NAT.read_text() + EXTRA, host)
    tap = next(a.do.args["name"] for a in result.actions if a.do.op == "tap.add")
    assert [a.do.op for a in result.actions] == ["tap.add", "dnsmasq.reload"]
    assert host.link_reads == ["links", ("links_named", tuple(sorted({tap, "virbr0"})))]
    assert not _apply(tmp_path, NAT.read_text() + EXTRA, host).actions  # and a full read agrees


def test_removing_it_reads_back_the_same_two(tmp_path):
    host = uplinked()
    _apply(tmp_path, NAT.read_text() + EXTRA, host)
    host.link_reads.clear()
    result = _apply(tmp_path, NAT.read_text(), host)
    tap = next(a.do.args["name"] for a in result.actions if a.do.op == "link.del")
    assert host.link_reads == ["links", ("links_named", tuple(sorted({tap, "virbr0"})))]


class LyingHost(FakeHost):
    """Once told which (`lies_about`), says it ran steps of that op and does nothing; counts the
    dnsmasq instances it is asked to read (by conf file)."""
    lies_about: str | None = None

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.dnsmasq_reads: list[str] = []

    def dnsmasq(self, conf: str, pid_file: str, exe: str | None = None) -> dict:
        self.dnsmasq_reads.append(Path(conf).name)
        return super().dnsmasq(conf, pid_file, exe)

    def run(self, step) -> None:
        if step.op == self.lies_about:
            self.ran.append(step)
            return
        super().run(step)


def test_a_tap_the_host_did_not_make_fails_the_verify_and_rolls_back(tmp_path):
    host = uplinked(LyingHost)
    _apply(tmp_path, NAT.read_text(), host)
    host.lies_about, before = "tap.add", host.state()
    with pytest.raises(HostError, match="after apply the host still differs: create tap"):
        _apply(tmp_path, NAT.read_text() + EXTRA, host)
    assert host.link_reads[-1][0] == "links_named"  # the targeted read is what caught it
    assert host.state() == before


def test_a_deleted_bridge_brings_its_ports_and_a_moved_port_both_bridges():
    links = {"br0": _link("br0"), "br1": _link("br1"), "t0": _link("t0", "br0"), "t1": _link("t1", "br0"),
             "t2": _link("t2", "br1")}
    assert touched_links([Step("link.del", {"name": "br0"})], links) == {"br0", "t0", "t1"}
    assert touched_links([Step("link.set", {"name": "t2", "master": "br0"})], links) == {"t2", "br0", "br1"}
    assert touched_links([Step("links.del_group", {"group": 5, "names": ["t0", "t2"]})], links) == {
        "t0", "t2", "br0", "br1"}
    assert touched_links([Step("sysctl.set", {"path": "net/ipv4/ip_forward", "value": "1"}),
                          Step("addr.add", {"link": "br0", "cidr": "10.0.0.1/24"})], links) == set()


@pytest.mark.parametrize("step", [Step("tc.limit", {"link": "t0"}), Step("macvtap.add", {"name": "m0"}),
                                  Step("vde.start", {"network": "v"}), Step("passt.start", {"guest": "g"})])
def test_a_step_that_may_make_or_change_other_links_reads_them_all(step):
    assert touched_links([step], {"t0": _link("t0")}) is None


def test_too_many_touched_links_read_them_all():
    names = [f"t{i}" for i in range(VERIFY_LINKS_MAX + 1)]
    assert touched_links([Step("links.del_group", {"group": 1, "names": names})], {}) is None
    assert touched_links([Step("links.del_group", {"group": 1, "names": names[:-1]})], {}) == set(names[:-1])


def test_names_given_as_a_tuple_are_names_not_one_name():
    links = {"t0": _link("t0", "br0"), "br0": _link("br0")}
    assert touched_links([Step("links.del_group", {"group": 1, "names": ("t0",)})], links) == {"t0", "br0"}


FORWARD = '\n[[networks.default.forwards]]\nproto = "tcp"\nhost_port = 8081\nguest = "web"\nguest_port = 81\n'


def test_a_new_forward_is_planned_twice_only_and_the_tables_new_content_is_kept(tmp_path, monkeypatch):
    """The verify adopts the table's content (as nft lists it after the change) before its one
    plan; a re-apply then finds nothing to do, and an edit of the table by hand is still seen."""
    from kvmnet.engine.plan import firewall

    host = uplinked()
    _apply(tmp_path, NAT.read_text(), host)
    plans, table = [], firewall.table  # (each plan plans the table once, whoever calls make)
    monkeypatch.setattr(firewall, "table", lambda *a, **k: plans.append(1) or table(*a, **k))
    result = _apply(tmp_path, NAT.read_text() + FORWARD, host)
    assert [a.do.op for a in result.actions] == ["firewall.elements"] and len(plans) == 2
    assert not _apply(tmp_path, NAT.read_text() + FORWARD, host).actions
    nft = next(t for (family, _), t in host.nft_tables.items() if family == "inet")
    chain = next(iter(nft["chains"].values()))
    chain["rules"].append("counter accept")  # someone's edit
    assert [a.do.op for a in _apply(tmp_path, NAT.read_text() + FORWARD, host).actions] == ["firewall.apply"]


TWO = NAT.read_text() + '''
[networks.second]
mode = "nat"
bridge = "kvsec0"
subnet = "10.77.0.0/24"
gateway = "10.77.0.1"

[networks.second.dhcp]
start = "10.77.0.100"
end = "10.77.0.199"
'''


def test_the_verify_reads_back_only_the_dnsmasq_its_steps_ran_for(tmp_path):
    host = uplinked(LyingHost)
    _apply(tmp_path, TWO, host)
    host.dnsmasq_reads.clear()
    result = _apply(tmp_path, TWO + EXTRA, host)
    assert "dnsmasq.reload" in [a.do.op for a in result.actions]
    # the first observation reads both; the verify the one whose leases changed
    assert sorted(host.dnsmasq_reads) == ["dnsmasq-default.conf", "dnsmasq-default.conf", "dnsmasq-second.conf"]
    assert not _apply(tmp_path, TWO + EXTRA, host).actions  # and a full read agrees


def test_a_reload_that_did_nothing_still_fails_the_verify(tmp_path):
    host = uplinked(LyingHost)
    _apply(tmp_path, TWO, host)
    host.lies_about, before = "dnsmasq.reload", host.state()
    with pytest.raises(HostError, match="after apply the host still differs"):
        _apply(tmp_path, TWO + EXTRA, host)
    assert host.state() == before
