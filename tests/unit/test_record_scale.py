"""What makes a big topology's record cheap to keep (issue 18) without changing what it says:
keys() follows the entries however they change, the hook index is not rewritten when it did
not change, and the nft listing's digest is the same however it is computed."""

from __future__ import annotations

import json
import os

from kvmnet.engine import record as records
from kvmnet.engine.record import Record
from kvmnet.host import nftables


def test_keys_follow_the_entries_however_they_change():
    rec = Record("t")
    assert rec.add("a", None) and not rec.add("a", None)
    rec.entries.append(["b", None])  # forced.py appends directly
    assert rec.keys() == {"a", "b"}
    rec.entries = [["c", None]]  # teardown replaces the list
    assert rec.keys() == {"c"}
    rec.entries.extend([["d", None], ["e", None]])  # transaction extends it
    rec.drop_all(["c", "e"])
    assert rec.keys() == {"d"} and rec.entries == [["d", None]]


def test_add_refuses_a_key_already_there_however_the_entries_changed():
    rec = Record("t")
    assert rec.add("a", None) and not rec.add("a", None)
    rec.entries.append(["b", None])  # appended directly: add() must see it
    assert not rec.add("b", None)
    rec.entries = [["c", None]]  # replaced: "a" is free again
    assert rec.add("a", None) and not rec.add("c", None)
    rec.drop("a")
    assert rec.add("a", None) and rec.entries == [["c", None], ["a", None]]


def test_a_write_ahead_of_many_keys_does_not_rebuild_the_keys_per_key(monkeypatch):
    """apply records every object it will create, 1000s in a row: add() keeps its own set in
    step instead of rebuilding keys() after each (that was quadratic: 10,000 keys took 3.6 s)."""
    built = []
    real = Record.keys
    monkeypatch.setattr(Record, "keys", lambda self: built.append(1) or real(self))
    rec = Record("t")
    for i in range(2000):
        assert rec.add(f"tap:t{i}", None)
    assert not rec.add("tap:t7", None)
    assert built == [] and len(real(rec)) == 2000


def test_an_unchanged_hook_index_is_not_rewritten(tmp_path):
    rec = Record("t", file="/x.toml", entries=[["link:br0", None]], networks={"n": {"bridge": "br0", "mode": "nat"}},
                 taps={"tap0": "n"})
    records.save(str(tmp_path), rec)
    hooks = tmp_path / "t" / records.HOOK_INDEX
    first = os.stat(hooks).st_ino
    rec.entries.append(["link:tap0", None])  # the record changes, the hook index does not
    records.save(str(tmp_path), rec)
    assert os.stat(hooks).st_ino == first
    assert json.loads((tmp_path / "t" / "state.json").read_text())["entries"] == rec.entries
    rec.taps["tap1"] = "n"
    records.save(str(tmp_path), rec)
    assert "tap tap1 n" in hooks.read_text()
    hooks.unlink()  # removed behind kvmnet's back: written again
    records.save(str(tmp_path), rec)
    assert "tap tap1 n" in hooks.read_text()


def test_the_listing_digest_does_not_depend_on_when_volatile_keys_go():
    raw = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "kvmnet_t", "handle": 7}},
        {"rule": {"family": "inet", "table": "kvmnet_t", "chain": "forward", "handle": 12, "comment": "kvmnet 0123456789ab",
                  "expr": [{"counter": {"packets": 5, "bytes": 300}}, {"accept": None}]}},
        {"map": {"family": "inet", "name": "fwd_any", "handle": 3, "elem": [[{"concat": ["tcp", 8080]}, {"concat": ["10.0.0.2", 80]}]]}},
    ]})
    full = [i for i in json.loads(raw)["nftables"] if "metainfo" not in i]
    parsed = [i for i in json.loads(raw, object_hook=nftables._drop_volatile)["nftables"] if "metainfo" not in i]
    assert nftables._digest(parsed) == nftables.content_digest(full)
    assert "handle" not in json.dumps(parsed) and "packets" not in json.dumps(parsed)
