"""engine/topocache.py with config/tomledit.py: an edited file is parsed again only where the
edit touched it, from the way the kept entry parsed it, and loads exactly as a whole load does
(the same topology, the same problems); a kept parse that does not fit is a whole load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.keptcache import kept_nat

import kvmnet
from kvmnet import config
from kvmnet.config import tomlfast
from kvmnet.engine import topocache
from kvmnet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
GUEST = '\n[guests.extra]\n[[guests.extra.nics]]\nnetwork = "default"\nip = "192.168.122.77"\n'


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """(file, state dir, the texts tomlfast parsed since) with nat.toml applied and kept."""
    src, state = kept_nat(tmp_path)
    parsed: list[str] = []
    real = tomlfast.loads
    monkeypatch.setattr(tomlfast, "loads", lambda text, *a: parsed.append(text) or real(text, *a))
    return src, state, parsed


def whole_texts(parsed: list[str], src: Path) -> int:
    return sum(text == src.read_text() for text in parsed)


def test_an_added_guest_is_parsed_alone_and_loads_as_a_whole_load_does(kept):
    src, state, parsed = kept
    src.write_text(src.read_text() + GUEST)
    topo = topocache.load(str(src), str(state))
    # the new guest, and the one before it (lines added after a piece may belong to it)
    assert [text.split("]")[0] for text in parsed] == ["[guests.other", "[guests.extra"]
    assert topo == config.load(str(src)) and topo.source == src.read_text()
    assert "extra" in [g.name for g in topo.guests]


def test_edits_in_a_row_each_start_from_the_last_kept_parse(kept):
    src, state, parsed = kept
    for text in (src.read_text() + GUEST, src.read_text().replace("192.168.122.10", "192.168.122.11"),
                 (ROOT / "topologies" / "nat.toml").read_text()):
        src.write_text(text)
        parsed.clear()
        topo = topocache.load(str(src), str(state))
        topocache.keep_loaded()
        assert whole_texts(parsed, src) == 0 and topo == config.load(str(src))


def test_an_edit_with_a_problem_says_what_the_loader_says(kept):
    src, state, _ = kept
    src.write_text(src.read_text() + GUEST.replace("192.168.122.77", "10.9.9.9"))
    with pytest.raises(InputError) as cached:
        topocache.load(str(src), str(state))
    with pytest.raises(InputError) as direct:
        config.load(str(src))
    assert str(cached.value) == str(direct.value) and "guests.extra.nics[0].ip" in str(cached.value)
    topocache.keep_loaded()  # a file with a problem is not kept: the previous entry stays
    src.write_text(src.read_text().replace("10.9.9.9", "192.168.122.77"))
    assert topocache.load(str(src), str(state)) == config.load(str(src))


@pytest.mark.parametrize("spoil", ["offset", "tail", "not a parse", "other version"])
def test_a_kept_parse_that_does_not_fit_is_a_whole_load(kept, spoil, monkeypatch):
    src, state, parsed = kept
    slot = Path(topocache.cache_path(str(state), str(src)))
    head, _, body = slot.read_bytes().partition(b"\n")
    header = json.loads(head)
    if spoil == "offset":
        header["edit"] = len(body) + 5
    elif spoil == "tail":
        body = body[:header["edit"] + 9]
    elif spoil == "not a parse":
        import marshal
        body = body[:header["edit"]] + marshal.dumps(("text", {}, [1], [], []), 4)
    else:
        monkeypatch.setattr(kvmnet, "__version__", "99.0")
    slot.write_bytes(json.dumps(header).encode() + b"\n" + body)
    src.write_text(src.read_text() + GUEST)
    topo = topocache.load(str(src), str(state))
    assert whole_texts(parsed, src) == 1 and topo == config.load(str(src))


def test_a_file_parsed_whole_every_time_keeps_no_parse(tmp_path):
    src = tmp_path / "t.toml"
    text = (ROOT / "topologies" / "nat.toml").read_text()
    src.write_text('"name" = "quoted"\n' + text.replace('name = "nat"\n', ""))  # a quoted key: tomllib's
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    topo = topocache.load(str(src), str(state))
    topocache.keep_loaded()
    header = json.loads(Path(topocache.cache_path(str(state), str(src))).read_bytes().partition(b"\n")[0])
    assert topo.name == "quoted" and header["edit"] == 0


def test_every_shipped_topology_edited_loads_as_a_whole_load_does(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for path in sorted((ROOT / "topologies").glob("*.toml")):
        src = tmp_path / path.name
        src.write_text(path.read_text())
        first = topocache.load(str(src), str(state))
        topocache.keep_loaded()
        src.write_text(path.read_text() + "\n# edited\n")
        edited = topocache.load(str(src), str(state))
        topocache.keep_loaded()
        assert edited == first and edited.source == src.read_text(), path.name


def test_a_file_tomlfast_refuses_is_read_by_tomlfast_once_then_tomllib(tmp_path, monkeypatch):
    text = (ROOT / "topologies" / "nat.toml").read_text() + '\n[guests.zz]\nnics = [\n  { network = "default" },\n]\n'
    calls: list[int] = []
    real = tomlfast.loads
    monkeypatch.setattr(tomlfast, "loads", lambda t, *a: calls.append(len(t)) or real(t, *a))
    topo, parsed = config.loader.load_edited(text.encode(), str(tmp_path / "t.toml"), None)
    assert calls == [len(text)] and parsed is None and "zz" in [g.name for g in topo.guests]
    assert topo == config.load_text(text, str(tmp_path / "t.toml"))
