"""watch's pure decisions (which topologies, which events, backoff, debounce), its netlink
notification parser, and one sync pass against the in-memory host."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from helpers.fakehost import uplinked

from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.engine.watch import (BACKOFF_MAX, Backoff, Debounce, Interest, Watcher, nft_line_relevant, targets,
                                 wait_timeout)
from kvmnet.host import events

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED = str(ROOT / "topologies" / "nat.toml"), str(ROOT / "topologies" / "routed.toml")


def test_targets_are_the_applied_topologies_or_the_applied_files_given():
    applied = {"nat": "/etc/kvmnet/nat.toml", "lab": "/srv/lab.toml"}
    assert targets(applied, None) == applied
    assert targets(applied, {"nat": "/tmp/nat.toml", "gone": "/tmp/gone.toml"}) == {"nat": "/tmp/nat.toml"}
    assert targets({"nat": ""}, None) == {}  # a record without a file: nothing to re-plan from


def test_interest_only_in_the_watched_links_and_kvmnet_tables():
    i = Interest(names={"virbr0", "kn-nat-web-0"}, indexes={7, 9}, pids={123})
    assert i.relevant(("link", "virbr0", 99)) and i.relevant(("link", "", 7))
    assert not i.relevant(("link", "docker0", 3))
    assert i.relevant(("addr", 9)) and not i.relevant(("addr", 3))
    assert i.relevant(("route", 7)) and not i.relevant(("route", None))
    for always in (("overflow",), ("exit", 123), ("firewalld", "signal ... member=Reloaded")):
        assert i.relevant(always)
    assert not i.relevant(("signal", 15)) and not i.relevant(("gone", "nft"))


@pytest.mark.parametrize("line,relevant", [
    ("delete table inet kvmnet_nat", True),
    ("add rule inet kvmnet_nat forward iifname \"virbr0\" accept", True),
    ("add rule ip filter FORWARD iifname \"x\" counter packets 0 bytes 0 accept", True),  # iptables-nft
    ("flush ruleset", True),
    ("add table inet firewalld", False),
    ("add chain inet someone c", False),
    ("# new generation 5 by process 13352 (nft)", False),
])
def test_nft_monitor_lines(line, relevant):
    assert nft_line_relevant(line) is relevant


def test_backoff_doubles_caps_and_resets():
    b = Backoff()
    assert [b.failed("nat", 100.0) for _ in range(10)][:4] == [0.5, 1.0, 2.0, 4.0]
    assert b.failed("nat", 100.0) == BACKOFF_MAX
    assert not b.ready("nat", 100.0 + BACKOFF_MAX - 1) and b.ready("nat", 100.0 + BACKOFF_MAX)
    assert b.ready("other", 0) and b.next_retry() == 100.0 + BACKOFF_MAX
    b.succeeded("nat")
    assert b.ready("nat", 0) and b.next_retry() is None and b.failed("nat", 0) == 0.5


def test_debounce_waits_for_quiet_but_not_forever():
    d = Debounce()
    assert d.due() is None
    d.event(10.0)
    assert d.due() == pytest.approx(10.03)
    for t in (10.02, 10.04, 10.06, 10.08, 10.10, 10.12, 10.14, 10.16, 10.18, 10.19):
        d.event(t)  # a steady stream: the burst still ends 200 ms after it began
    assert d.due() == pytest.approx(10.2)
    d.reset()
    assert d.due() is None


def test_wait_timeout_sleeps_until_the_earliest_deadline_or_forever():
    assert wait_timeout(5.0) is None and wait_timeout(5.0, None, None) is None
    assert wait_timeout(5.0, 5.5, 7.0) == 0.5 and wait_timeout(5.0, 4.0) == 0.0


def _nlmsg(kind: int, payload: bytes) -> bytes:
    return struct.pack("IHHII", 16 + len(payload), kind, 0, 0, 0) + payload


def test_notifications_parse_into_events():
    name = b"virbr0\0\0"
    link = struct.pack("BxHiII", 0, 1, 7, 0, 0) + struct.pack("HH", 4 + 7, 3) + name
    addr = struct.pack("BBBBI", 2, 24, 0, 0, 9)
    route = struct.pack("BBBBBBBBI", 2, 24, 0, 0, 254, 4, 0, 1, 0) + struct.pack("HHI", 8, 4, 7)
    data = _nlmsg(16, link) + _nlmsg(17, link) + _nlmsg(21, addr) + _nlmsg(24, route) + _nlmsg(99, b"")
    assert events.parse_notifications(data) == [("link", "virbr0", 7), ("link", "virbr0", 7), ("addr", 9),
                                                ("route", 7)]
    assert events.parse_notifications(_nlmsg(16, b"\0" * 4)) == [("overflow",)]  # unreadable: look anyway


# ---------------------------------------------------------------- one pass on the in-memory host

@pytest.fixture
def host(monkeypatch):
    return uplinked()  # not installed as system.default: sync() is handed it


def test_sync_repairs_drift_and_logs_one_line(host, tmp_path):
    state = str(tmp_path / "state")
    engine.apply(config.load(NAT), state, host=host)
    lines = []
    w = Watcher(state, lines.append, host=host)
    w.sync()
    assert lines == [] and "virbr0" in w.interest.names and w.interest.pids
    host.run(engine_step("link.del", name="virbr0"))
    w.sync()
    assert len(lines) == 1 and lines[0].startswith("nat: repaired in ") and "create bridge virbr0" in lines[0]
    assert engine.Context(config.load(NAT), state, host=host).actions == []


def test_sync_drops_a_destroyed_topology(host, tmp_path):
    state = str(tmp_path / "state")
    engine.apply(config.load(NAT), state, host=host)
    lines = []
    w = Watcher(state, lines.append, host=host)
    w.sync()
    engine.destroy("nat", state, host=host)
    w.sync()
    assert lines == ["nat: no longer applied (destroyed); dropped"]
    assert "virbr0" not in host.links() and not w.interest.names


def test_sync_leaves_alone_a_file_that_is_not_what_is_applied(host, tmp_path):
    """Removing what the record holds is a change of the topology, not drift: `kvmnet apply`'s."""
    state = str(tmp_path / "state")
    text = Path(NAT).read_text()
    path = tmp_path / "nat.toml"
    path.write_text(text)
    engine.apply(config.load(str(path)), state, host=host)
    lines = []
    w = Watcher(state, lines.append, host=host)
    # an edit made before watch first read the file (it reads it when it first sees the topology)
    path.write_text(text.replace("[guests.other]", "[guests.gone]").replace("guests.other.nics", "guests.gone.nics"))
    before = host.state()
    w.sync()
    w.sync()
    assert len(lines) == 1 and "is not what is applied (it would remove link:kn-nat-other-0" in lines[0]
    assert host.state() == before


def test_sync_backs_off_after_a_failure(host, tmp_path):
    state = str(tmp_path / "state")
    engine.apply(config.load(NAT), state, host=host)
    lines = []
    w = Watcher(state, lines.append, host=host)
    host.run(engine_step("link.del", name="virbr0"))
    host.fail(op="bridge.add")
    w.sync()
    assert "nat: repair failed (1 in a row)" in lines[0] and lines[0].endswith("next try in 0.5 s")
    assert w.failed_last and records.load(state, "nat").entries  # the record still covers everything
    w.sync()  # within the backoff: not tried
    assert len(lines) == 1
    w.backoff.until["nat"] = 0
    w.sync()
    assert lines[1].startswith("nat: repaired in ") and lines[2] == "nat: in sync again"


def engine_step(op: str, **args):
    from kvmnet.engine.steps import Step
    return Step(op, args)
