"""engine/topocache.py: a file whose bytes, path, kvmnet version and validating code match
the kept entry loads from it; any change, an entry another user could have written, and a
corrupt entry are misses (the file is loaded as always); problems are never kept."""

from __future__ import annotations

import json
import marshal
import os
from pathlib import Path

import pytest
from helpers.keptcache import kept_nat

import kvmnet
from kvmnet import cli_common, config
from kvmnet.engine import topocache
from kvmnet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path):
    """(topology file, state dir, the kept entry's path) with the entry written and then
    tampered with (bridge virbr0 -> tamper), so a result shows where it came from."""
    src, state = kept_nat(tmp_path)
    slot = Path(topocache.cache_path(str(state), str(src)))
    slot.write_bytes(slot.read_bytes().replace(b"virbr0", b"tamper"))  # as long: marshal counts string lengths
    return src, state, slot


def _bridge(src, state) -> str:
    return topocache.load(str(src), str(state)).networks[0].bridge


def test_the_kept_entry_is_used_for_the_same_file(setup):
    src, state, slot = setup
    assert _bridge(src, state) == "tamper"  # read from the entry, not the file
    assert slot.stat().st_mode & 0o777 == 0o600 and slot.parent == state  # a file: directories are topologies


def test_a_hit_writes_nothing(setup):
    src, state, slot = setup
    before = stat_of(slot)
    topocache.load(str(src), str(state))
    topocache.keep_loaded()
    assert stat_of(slot) == before


def test_a_changed_file_is_a_miss_and_is_kept_anew(setup):
    src, state, slot = setup
    src.write_text(src.read_text() + "\n# edited\n")
    assert _bridge(src, state) == "virbr0"
    topocache.keep_loaded()
    assert _bridge(src, state) == "virbr0" and b"tamper" not in slot.read_bytes()


def test_another_kvmnet_version_is_a_miss(setup, monkeypatch):
    src, state, _ = setup
    monkeypatch.setattr(kvmnet, "__version__", "99.0")
    assert _bridge(src, state) == "virbr0"


def test_changed_validating_code_is_a_miss(setup, monkeypatch):
    src, state, _ = setup
    monkeypatch.setattr(topocache, "_stamp", ["another build"])
    assert _bridge(src, state) == "virbr0"


def test_the_same_bytes_under_another_path_are_a_miss(setup):
    src, state, slot = setup
    other = src.with_name("copy.toml")
    other.write_bytes(src.read_bytes())
    Path(topocache.cache_path(str(state), str(other))).write_bytes(slot.read_bytes())
    os.chmod(topocache.cache_path(str(state), str(other)), 0o600)
    assert _bridge(other, state) == "virbr0"  # the entry names nat.toml: its path, names, messages


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_an_entry_others_may_write_is_ignored(setup, mode):
    src, state, slot = setup
    os.chmod(slot, mode)
    assert _bridge(src, state) == "virbr0"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_an_entry_owned_by_another_user_is_ignored(setup):
    src, state, slot = setup
    os.chown(slot, 65534, 65534)
    assert _bridge(src, state) == "virbr0"


def test_an_entry_through_a_symlink_is_ignored(setup, tmp_path):
    src, state, slot = setup
    elsewhere = tmp_path / "elsewhere.json"
    slot.rename(elsewhere)
    slot.symlink_to(elsewhere)
    assert _bridge(src, state) == "virbr0"


def _corrupt(data: bytes) -> list[bytes]:
    """The slot's header line and body, each spoiled in turn."""
    head, _, body = data.partition(b"\n")
    header, topology = json.loads(head), marshal.loads(body)
    port_as_text = marshal.loads(body)
    port_as_text[2][0][13] = [["tcp", ["8080", 8080], 3232266762, [80, 80], "web", None, 0, None]]

    def slot(h, t) -> bytes:
        return json.dumps(h).encode() + b"\n" + (t if isinstance(t, bytes) else marshal.dumps(t, 2))
    nested = b"[\x01\x00\x00\x00" * 100000  # marshal's list of one list of one ...
    return [b"", b"{", b"[]", b"null", slot(header, port_as_text), slot(dict(header, more=1), topology),
            # (cut inside the topology: a cut in the parse kept after it spoils only that, a whole parse next edit)
            slot(header, topology[:3]), slot(header, nested), slot(header, body[:header["edit"] - 7]),
            slot(header, b"\xff\x00"),
            slot(header, compile("1", "x", "eval")), slot(header, json.dumps(topology).encode()),
            b"[" * 100000 + b"\n" + body, slot(dict(header, name="other"), topology),
            slot(dict(header, name=7), topology), head, slot(dict(header, key=dict(header["key"], python="2.7")), topology),
            json.dumps({"key": header["key"], "topology": topology}).encode()]  # the slot as kvmnet 0.x wrote it


@pytest.mark.parametrize("which", range(18))
def test_a_corrupt_entry_is_ignored(setup, which):
    src, state, slot = setup
    slot.write_bytes(_corrupt(slot.read_bytes())[which])
    topo = topocache.load(str(src), str(state))
    assert topo == config.load(str(src)) and topo.source == src.read_text()


def test_a_file_with_problems_is_never_kept_and_says_what_the_loader_says(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[networks.x]\nmode = "nat"\nbridge = "kvx0"\nsubnet = "10.0.0.0/33"\n')
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with pytest.raises(InputError) as exc:
        topocache.load(str(bad), str(state))
    with pytest.raises(InputError) as direct:
        config.load(str(bad))
    assert str(exc.value) == str(direct.value) and str(exc.value).startswith(f"{bad}:5: networks.x.subnet: ")
    topocache.keep_loaded()
    assert not os.path.exists(topocache.cache_path(str(state), str(bad)))


def test_every_shipped_topology_comes_back_equal(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for path in sorted((ROOT / "topologies").glob("*.toml")):
        fresh = topocache.load(str(path), str(state))
        topocache.keep_loaded()
        kept = topocache.load(str(path), str(state))
        assert kept == fresh and kept.source == fresh.source, path.name


def stat_of(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_destroy_forgets_the_kept_entry(tmp_path):
    from helpers.fakehost import FakeHost
    from kvmnet import engine
    src = tmp_path / "nat.toml"
    src.write_text((ROOT / "topologies" / "nat.toml").read_text())
    state = tmp_path / "state"
    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    engine.apply(topocache.load(str(src), str(state)), str(state), host=host)
    assert os.path.exists(topocache.cache_path(str(state), str(src)))
    engine.destroy("nat", str(state), host=host)
    assert sorted(os.listdir(state)) == ["lock"] or sorted(os.listdir(state)) == []


def _leaves(node, path=()):
    """(path, value) of every scalar in an encoded topology."""
    if isinstance(node, list):
        for i, x in enumerate(node):
            yield from _leaves(x, path + (i,))
    else:
        yield path, node


def _replaced(node, path, value):
    node = json.loads(json.dumps(node))
    at = node
    for i in path[:-1]:
        at = at[i]
    at[path[-1]] = value
    return node


@pytest.mark.parametrize("name", ["nat.toml", "dual-stack.toml", "multihost.toml", "bandwidth.toml"])
def test_every_value_of_a_wrong_type_is_unfit(name):
    """Each scalar of the encoded topology, as a float (no field has that type), and each int as a
    bool: decoding refuses every one, whichever way the field's type is checked."""
    from kvmnet.config import topojson

    topo = config.load(str(ROOT / "topologies" / name))
    data = json.loads(json.dumps(topojson.encode(topo)))
    assert topojson.decode(data, topo.source) == topo
    leaves = list(_leaves(data))
    for path, value in leaves:
        for wrong in [1.5] + ([True] if type(value) is int else []):
            with pytest.raises(topojson.Unfit):
                topojson.decode(_replaced(data, path, wrong), "")
    assert len(leaves) > 50


def test_decoded_values_are_whole_frozen_values_and_no_address_outlives_a_decode():
    """The decoder fills each instance's __dict__ instead of calling __init__: the values still
    compare, hash and refuse assignment as built ones do; its shared addresses are dropped after
    each decode, also one that failed."""
    from kvmnet.config import topojson
    from kvmnet.valueclass import FrozenInstanceError

    topo = config.load(str(ROOT / "topologies" / "nat.toml"))
    back = topojson.decode(topojson.encode(topo), topo.source)
    assert back == topo and hash(back.networks) == hash(topo.networks)
    with pytest.raises(FrozenInstanceError):
        back.networks[0].forwards[0].guest_ports = (1, 1)
    assert all(not made for made in topojson._interned.values())
    data = json.loads(json.dumps(topojson.encode(topo)))
    data[-1] = 1.5  # the last field, after every address was decoded
    with pytest.raises(topojson.Unfit):
        topojson.decode(data, "")
    assert all(not made for made in topojson._interned.values())


def test_a_class_with_a_field_init_does_not_take_is_built_through_its_init():
    from kvmnet.config import values
    from kvmnet.valueclass import field, value

    @value
    class Checked:
        a: int
        b: int = field(default=7, init=False)

    @value
    class Plain:
        a: int

    assert values.maker(Checked, ["a"])([3]) == Checked(3) and values.maker(Checked, ["a"])([3]).b == 7
    assert values.maker(Plain, ["a"])([3]) == Plain(3)
    assert values.evolve(Checked(3), a=4).b == 7  # through replace, so through __init__
    with pytest.raises(ValueError, match="init=False"):
        values.evolve(Checked(3), b=4)


def test_the_header_alone_names_the_topology_for_destroy(setup, monkeypatch):
    src, state, slot = setup
    head, _, _ = slot.read_bytes().partition(b"\n")
    slot.write_bytes(head.replace(b'"name": "nat"', b'"name": "from_header"') + b"\n" + b"not marshal")
    monkeypatch.setattr(config.loader, "load_bytes", lambda *a: pytest.fail("the file was loaded"))
    assert topocache.cached_name(str(src), str(state)) == "from_header"
    assert cli_common.load_name(str(src), str(state)) == "from_header"


def test_without_its_entry_destroy_loads_the_file_and_its_problems_are_the_loaders(setup, tmp_path):
    src, state, slot = setup
    src.write_text(src.read_text() + "\n# edited\n")
    assert topocache.cached_name(str(src), str(state)) is None
    assert cli_common.load_name(str(src), str(state)) == "nat"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[networks.x]\nmode = "nat"\nbridge = "kvx0"\nsubnet = "10.0.0.0/33"\n')
    with pytest.raises(InputError) as exc:
        cli_common.load_name(str(bad), str(state))
    assert str(exc.value).startswith(f"{bad}:5: networks.x.subnet")


# run in a child whose address space is capped, so a damaged length makes marshal run out of
# memory (unlimited, the kernel would hand it the 16 GB lazily and marshal would hit the end instead)
OUT_OF_MEMORY = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from kvmnet.engine import topocache
src, state, slot = sys.argv[1:]
head = Path(slot).read_bytes().partition(b"\\n")[0]
Path(slot).write_bytes(head + b"\\n" + b"[" + (2**31 - 1).to_bytes(4, "little"))
try:
    import marshal
    marshal.loads(b"[" + (2**31 - 1).to_bytes(4, "little"))
except MemoryError:
    print("marshal: MemoryError")
topo = topocache.load(src, state)
print("loaded", topo.name)
"""


def test_a_damaged_length_that_runs_marshal_out_of_memory_is_a_miss(setup):
    import subprocess
    import sys
    src, state, slot = setup
    done = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(src), str(state), str(slot)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["marshal: MemoryError", "loaded nat"], done.stderr[-800:]


def test_a_topologys_network_index_is_its_own_and_changes_nothing_else():
    """Topology.network looks names up in a dict kept beside the fields: a replaced topology has
    its own, and the kept one takes no part in ==, hash, repr or the cache's encoding."""
    from kvmnet.config import topojson
    from kvmnet.valueclass import replace

    topo = config.load(str(ROOT / "topologies" / "nat.toml"))
    fresh = config.load(str(ROOT / "topologies" / "nat.toml"))
    assert topo.network("default") is topo.networks[0]
    assert topo == fresh and repr(topo) == repr(fresh) and topojson.encode(topo) == topojson.encode(fresh)
    renamed = replace(topo.networks[0], name="other")
    moved = replace(topo, networks=(renamed,))
    assert moved.network("other") is renamed
    with pytest.raises(KeyError):
        moved.network("default")


def test_field_types_are_read_as_typing_reads_them():
    """topojson evaluates model.py's annotations itself (no typing import on the apply path):
    for every value class of the model, the same types as typing.get_type_hints, and each has
    a codec (a union or generic written in typing's forms would have none)."""
    import typing

    from kvmnet import model
    from kvmnet.config import topojson
    from kvmnet.valueclass import is_value_class

    classes = [c for c in vars(model).values() if isinstance(c, type) and is_value_class(c)]
    assert model.Topology in classes and model.Forward in classes
    for cls in classes:
        assert topojson._hints(cls) == typing.get_type_hints(cls, vars(model)), cls
    for hint in topojson._hints(model.Topology).values():
        topojson._codec(hint)
