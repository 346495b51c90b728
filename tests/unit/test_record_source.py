"""The applied file's text lives beside the record (source-<sha256>.toml), named by its digest
in state.json: what `try` rolls back to survives a new text's save, a rollback, a tampered or
missing file, and a record of kvmnet 0.x that kept the text inline; destroy leaves none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.fakehost import uplinked

from kvmnet import config, engine
from kvmnet.engine import record as records
from kvmnet.errors import HostError

ROOT = Path(__file__).resolve().parents[2]
NAT = ROOT / "topologies" / "nat.toml"


def _sources(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "nat").glob("source-*"))


def _apply_text(tmp_path: Path, text: str, host, root: Path):
    path = tmp_path / "nat.toml"
    path.write_text(text)
    return engine.apply(config.load(str(path)), str(root), host=host)


def test_the_record_names_the_text_and_the_text_is_kept_beside_it(tmp_path):
    root, host, text = tmp_path / "s", uplinked(), NAT.read_text()
    _apply_text(tmp_path, text, host, root)
    data = json.loads((root / "nat" / "state.json").read_text())
    assert "source" not in data and data["source_sha256"] == records.source_digest(text)
    assert _sources(root) == [records.SOURCE_FILE.format(data["source_sha256"])]
    assert (root / "nat" / _sources(root)[0]).stat().st_mode & 0o777 == 0o600
    assert records.load(str(root), "nat").source == text


def test_a_new_text_replaces_the_old_file_and_a_comment_only_edit_is_kept(tmp_path):
    root, host, text = tmp_path / "s", uplinked(), NAT.read_text()
    _apply_text(tmp_path, text, host, root)
    edited = "# only a comment\n" + text
    result = _apply_text(tmp_path, edited, host, root)
    assert not result.actions  # nothing to do on the host, yet the text is the new one
    assert _sources(root) == [records.SOURCE_FILE.format(records.source_digest(edited))]
    assert records.load(str(root), "nat").source == edited


def test_a_rolled_back_apply_keeps_the_text_it_had(tmp_path):
    root, host, text = tmp_path / "s", uplinked(), NAT.read_text()
    _apply_text(tmp_path, text, host, root)
    changed = text.replace("192.168.122.", "192.168.123.")
    assert changed != text
    host.fail(at=1)
    with pytest.raises(HostError):
        _apply_text(tmp_path, changed, host, root)
    rec = records.load(str(root), "nat")
    assert rec.source_sha256 == records.source_digest(text) and rec.source == text
    assert _sources(root) == [records.SOURCE_FILE.format(records.source_digest(text))]


@pytest.mark.parametrize("damage", ["tampered", "missing"])
def test_a_text_that_is_not_the_one_named_is_no_text(tmp_path, damage):
    root, host, text = tmp_path / "s", uplinked(), NAT.read_text()
    _apply_text(tmp_path, text, host, root)
    kept = root / "nat" / _sources(root)[0]
    if damage == "tampered":
        kept.write_text(text + "\n[networks.evil]\n")
    else:
        kept.unlink()
    assert records.load(str(root), "nat").source == ""


def test_a_record_that_kept_the_text_inline_still_reads_and_moves_it_out(tmp_path):
    root, host, text = tmp_path / "s", uplinked(), NAT.read_text()
    _apply_text(tmp_path, text, host, root)
    state = root / "nat" / "state.json"
    data = json.loads(state.read_text())
    del data["source_sha256"]
    data["source"] = text  # as kvmnet 0.x wrote it
    state.write_text(json.dumps(data))
    for p in (root / "nat").glob("source-*"):
        p.unlink()
    rec = records.load(str(root), "nat")
    assert rec.source == text
    records.save(str(root), rec)
    data = json.loads(state.read_text())
    assert "source" not in data and records.load(str(root), "nat").source == text


@pytest.mark.parametrize("bad", ["abc", "0" * 63 + "g", 7])
def test_a_malformed_digest_makes_the_record_corrupt(tmp_path, bad):
    root, host = tmp_path / "s", uplinked()
    _apply_text(tmp_path, NAT.read_text(), host, root)
    state = root / "nat" / "state.json"
    data = json.loads(state.read_text())
    data["source_sha256"] = bad
    state.write_text(json.dumps(data))
    with pytest.raises(records.CorruptRecord, match="source_sha256"):
        records.load(str(root), "nat")


def test_destroy_leaves_no_text_behind(tmp_path):
    root, host = tmp_path / "s", uplinked()
    _apply_text(tmp_path, NAT.read_text(), host, root)
    engine.destroy("nat", str(root), host=host)
    assert not (root / "nat").exists()


def test_a_rollback_of_a_record_whose_text_is_lost_writes_no_file_under_its_name(tmp_path):
    root, host, text = tmp_path / "s", uplinked(), NAT.read_text()
    _apply_text(tmp_path, text, host, root)
    for p in (root / "nat").glob("source-*"):
        p.unlink()  # lost (a hand, a disk): the record still names it
    changed = text.replace("192.168.122.", "192.168.123.")
    host.fail(at=1)
    with pytest.raises(HostError):
        _apply_text(tmp_path, changed, host, root)
    assert _sources(root) == [] and records.load(str(root), "nat").source == ""


def test_a_copy_is_the_same_record_and_its_own(tmp_path):
    host = uplinked()
    _apply_text(tmp_path, NAT.read_text(), host, tmp_path / "state")
    rec = records.load(str(tmp_path / "state"), "nat")
    copy = rec.copy()
    assert json.dumps(copy.to_json()) == json.dumps(rec.to_json()) and copy.source == rec.source
    nested = next(i for i, (_, undo) in enumerate(copy.entries) if isinstance(undo, dict))
    copy.entries[nested][1]["changed"] = True  # a dict inside an entry: copied too, not shared
    copy.taps["x"] = 1
    assert "changed" not in rec.entries[nested][1] and "x" not in rec.taps


def test_the_digest_of_each_text_is_its_own():
    """source_digest keeps its last answer for the very same string: texts in turn each get
    their own sha256."""
    import hashlib

    one, other = "name = 'a'\n" * 3, "name = 'b'\n"
    for text in (one, other, one, one, other, ""):
        assert records.source_digest(text) == (hashlib.sha256(text.encode()).hexdigest() if text else "")
