"""A no-op apply does not list kvmnet's nft table again while nftables' generation has not
moved since the listing the record keeps (host/nftables.py observe, Record.nft_seen); any
commit to nftables moves it and the table is listed as before. The kept listing is part of the
record's closed schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.engine.record import CorruptRecord
from kvmnet.host import nftables, nftgen

TABLE = "kvmnet_t"
NAT = Path(__file__).resolve().parents[2] / "topologies" / "nat.toml"


def _items(forwards: int) -> list:
    return [{"table": {"family": "inet", "name": TABLE}},
            {"chain": {"family": "inet", "table": TABLE, "name": "prerouting"}},
            {"rule": {"family": "inet", "table": TABLE, "chain": "prerouting", "comment": "kvmnet 0123456789ab"}},
            {"map": {"family": "inet", "table": TABLE, "name": "fwd_any", "elem": list(range(forwards))}}]


@pytest.fixture
def nft(monkeypatch):
    """The host's nftables as this test sets it: {"gen": stamp or None, "items": listing or None}."""
    host = {"gen": "boot:4026531840:7", "items": _items(2), "listings": 0, "terse": 0}

    def listing(family, table, terse=False):
        host["terse" if terse else "listings"] += 1
        items = copy.deepcopy(host["items"]) if family == "inet" else None
        for item in items or [] if terse else []:  # nft -t: maps without their elements
            item.get("map", {}).pop("elem", None)
        return items
    monkeypatch.setattr(nftgen, "stamp", lambda: host["gen"])
    monkeypatch.setattr(nftables, "_list", listing)
    return host


def test_an_unmoved_generation_returns_the_kept_listing_without_listing(nft):
    first = nftables.observe(TABLE, False)
    assert first["elements"] == {"fwd_any": 2} and nft["listings"] == 1
    again = nftables.observe(TABLE, False, known=json.loads(json.dumps(first)))  # as the record keeps it
    assert again == first and nft["listings"] == 1


def test_a_moved_generation_lists_again(nft):
    first = nftables.observe(TABLE, False)
    nft["gen"], nft["items"] = "boot:4026531840:8", _items(3)  # someone committed a change
    again = nftables.observe(TABLE, False, known=first)
    assert again["elements"] == {"fwd_any": 3} and again["forwards"] != first["forwards"]
    assert again["content"] == first["content"]  # the rest of the table is as it was
    assert again["stamp"]["at"] == "boot:4026531840:8" and nft["listings"] == 2


@pytest.mark.parametrize("other", [{"table": "kvmnet_u"}, {"bridge_table": True}])
def test_a_listing_of_another_table_or_family_choice_is_not_reused(nft, other):
    first = nftables.observe(TABLE, False)
    known = dict(first, stamp=dict(first["stamp"], **other))
    nftables.observe(TABLE, False, known=known)
    assert nft["listings"] == 2


def test_without_a_generation_every_observation_lists(nft):
    nft["gen"] = None  # no nf_tables netlink: nothing can be reused
    first = nftables.observe(TABLE, False)
    assert "stamp" not in first
    nftables.observe(TABLE, False, known=first)
    assert nft["listings"] == 2


def test_a_missing_table_is_kept_too(nft):
    nft["items"] = None
    gone = nftables.observe(TABLE, False)
    assert gone == {"exists": False, "stamp": {"at": nft["gen"], "table": TABLE, "bridge_table": False}}
    assert nftables.observe(TABLE, False, known=gone) == gone and nft["listings"] == 2  # inet, then bridge


def _record_with(tmp_path, nft_seen) -> None:
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    engine.apply(config.load(str(NAT)), str(tmp_path), host=host)
    path = tmp_path / "nat" / "state.json"
    data = json.loads(path.read_text())
    data["nft_seen"] = nft_seen
    path.write_text(json.dumps(data))


GOOD = {"exists": True, "families": ["inet"], "rules": {"prerouting": 1}, "elements": {"fwd_any": 2},
        "comments": ["kvmnet 0123456789ab"], "marked": True, "content": "ab" * 32,
        "stamp": {"at": "boot:1:2", "table": "kvmnet_nat", "bridge_table": False}}


def test_a_well_formed_kept_listing_loads(tmp_path):
    _record_with(tmp_path, GOOD)
    assert records.load(str(tmp_path), "nat").nft_seen == GOOD


@pytest.mark.parametrize("bad", [
    dict(GOOD, content="not hex"), dict(GOOD, rules={"prerouting": -1}), dict(GOOD, extra=1),
    {k: v for k, v in GOOD.items() if k != "stamp"}, dict(GOOD, stamp=dict(GOOD["stamp"], at=7)),
    dict(GOOD, families=["ip"]), {"exists": False, "stamp": GOOD["stamp"], "rules": {}}, [GOOD]])
def test_a_malformed_kept_listing_makes_the_record_corrupt(tmp_path, bad):
    _record_with(tmp_path, bad)
    with pytest.raises(CorruptRecord) as exc:
        records.load(str(tmp_path), "nat")
    assert "nft_seen" in str(exc.value)


def test_a_terse_known_lists_the_table_without_elements_and_takes_them_from_it(nft):
    full = nftables.observe(TABLE, False)
    nft["gen"] = "boot:4026531840:8"  # kvmnet's own load, proven by the generation (seen_after_load)
    known = {"terse": True, "elements": full["elements"], "forwards": full["forwards"],
             "stamp": dict(full["stamp"], at=nft["gen"])}
    seen = nftables.observe(TABLE, False, known=known)
    assert seen == dict(full, stamp=known["stamp"]) and (nft["listings"], nft["terse"]) == (1, 1)
    # maps that are not the loaded ones: listed whole
    nft["items"] = _items(2) + [{"map": {"family": "inet", "table": TABLE, "name": "fwd_tcp", "elem": [1]}}]
    seen = nftables.observe(TABLE, False, known=known)
    assert seen["elements"] == {"fwd_any": 2, "fwd_tcp": 1} and (nft["listings"], nft["terse"]) == (2, 2)
