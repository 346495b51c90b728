"""An apply that removes several guests deletes their taps in one request (moved into the
topology's removal link group, then that group deleted), writes the record once for them, and
still rolls back each one when a later step fails (engine/transaction._batches)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakehost import FakeHost, uplinked

from kvmnet import config, engine, naming
from kvmnet.engine import record as records
from kvmnet.errors import HostError

ROOT = Path(__file__).resolve().parents[2]
NAT = (ROOT / "topologies" / "nat.toml").read_text()
EXTRA = "".join(f'\n[guests.x{i}]\n[[guests.x{i}.nics]]\nnetwork = "default"\nip = "192.168.122.{50 + i}"\n'
                for i in range(5))


def _apply(tmp_path, text: str, host):
    path = tmp_path / "nat.toml"
    path.write_text(text)
    return engine.apply(config.load(str(path)), str(tmp_path / "state"), host=host)


def _taps(host) -> set[str]:
    return {n for n, link in host.links_.items() if link["kind"] == "tun"}


def test_removed_taps_go_in_one_request_and_one_record_write(tmp_path, monkeypatch):
    host = uplinked()
    _apply(tmp_path, NAT + EXTRA, host)
    extra = {f"kn-nat-x{i}-0" for i in range(5)} & _taps(host)
    kept = _taps(host) - extra
    assert len(extra) == 5 and kept
    saves = []
    save = records.save
    monkeypatch.setattr(records, "save", lambda *a: saves.append(len(host.ran)) or save(*a))
    host.ran.clear()
    result = _apply(tmp_path, NAT, host)
    assert sorted(a.do.args["name"] for a in result.actions if a.do.op == "link.del") == sorted(extra)
    deletes = [s for s in host.ran if s.op in ("link.del", "links.del_group")]
    assert [(s.op, sorted(s.args["names"]), s.args["group"], s.args["regroup"]) for s in deletes] == [
        ("links.del_group", sorted(extra), naming.removal_group("nat"), True)]
    # no write-ahead (the run creates nothing): the first write is the removals', after they ran;
    # then the last
    assert _taps(host) == kept and len(saves) == 2 and saves[0] == host.ran.index(deletes[0]) + 1
    assert not _apply(tmp_path, NAT, host).actions


class FailingReload(FakeHost):
    """dnsmasq's reload (after the taps' removal in the plan) fails."""
    fail = False

    def run(self, step) -> None:
        if self.fail and step.op == "dnsmasq.reload":
            raise HostError("reload refused")
        super().run(step)


def _without_indexes(state: dict) -> dict:
    """A host's state but the links' ifindexes (a tap made again has a new one)."""
    return {**state, "links": {n: {k: v for k, v in link.items() if k != "index"} for n, link in state["links"].items()}}


def test_a_later_failure_puts_every_removed_tap_back(tmp_path):
    host = uplinked(FailingReload)
    _apply(tmp_path, NAT + EXTRA, host)
    before = host.state()
    host.fail = True
    with pytest.raises(HostError, match="reload refused"):
        _apply(tmp_path, NAT, host)
    assert _without_indexes(host.state()) == _without_indexes(before)  # same taps, bridge, group, MAC
    keys = records.load(str(tmp_path / "state"), "nat").keys()
    assert {f"link:kn-nat-x{i}-0" for i in range(5)} <= keys  # and the record still names them all


def test_a_fault_inside_the_run_stops_before_any_of_it(tmp_path, monkeypatch):
    host = uplinked()
    _apply(tmp_path, NAT + EXTRA, host)
    before = host.state()
    monkeypatch.setenv("KVMNET_FAULT_AT", "2")  # the third removal
    with pytest.raises(HostError, match="injected fault before step 2"):
        _apply(tmp_path, NAT, host)
    assert host.state() == before


class FailingGroupDelete(FakeHost):
    """Moves the taps into the removal group, then fails before deleting them."""
    fail = False

    def run(self, step) -> None:
        if self.fail and step.op == "links.del_group" and step.args.get("regroup"):
            for name in step.args["names"]:
                self.links_[name]["group"] = step.args["group"]
            raise HostError("delete refused")
        super().run(step)


def test_a_failed_group_deletion_says_so_and_puts_the_taps_back_in_their_group(tmp_path):
    host = uplinked(FailingGroupDelete)
    _apply(tmp_path, NAT + EXTRA, host)
    before = host.state()
    host.fail = True
    with pytest.raises(HostError) as exc:
        _apply(tmp_path, NAT, host)
    assert str(exc.value).startswith("apply failed at steps 1-5 (delete 5 taps (link group "
                                     f"{naming.removal_group('nat')}, moved into it first)): delete refused")
    assert _without_indexes(host.state()) == _without_indexes(before)  # their own group again


def test_a_run_that_creates_writes_the_record_before_its_first_step(tmp_path, monkeypatch):
    """The write-ahead stays for what a run creates: the taps of added guests are in the record
    before the first step runs."""
    host = uplinked()
    _apply(tmp_path, NAT, host)
    saves = []
    save = records.save
    monkeypatch.setattr(records, "save", lambda root, rec: saves.append((len(host.ran), [k for k, _ in rec.entries]))
                        or save(root, rec))
    host.ran.clear()
    _apply(tmp_path, NAT + EXTRA, host)
    ran, keys = saves[0]
    assert ran == 0 and {f"link:kn-nat-x{i}-0" for i in range(5)} <= set(keys)
