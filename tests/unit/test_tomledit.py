"""config/tomledit.py: re-reading only what an edit touched gives what reading the whole text gives.

Random topology-shaped documents (pieces of entities interleaved, as files written by hand and
by tools are) take random edits: pieces added, removed, moved, changed a line at a time, lines
no topology has, single characters anywhere. For each, reparse() either declines (None) or
returns exactly what parse() of the whole new text returns: the same dict with keys in the same
order, and the same index of pieces for the edit after it.
"""

from __future__ import annotations

import random

import pytest

from kvmnet.config import tomledit, tomlfast


def ordered(value):
    """A value whose == also compares the order of every dict's keys, and each value's type
    (True == 1 == 1.0 otherwise)."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return type(value), value


def same(a: tomledit.Parsed, b: tomledit.Parsed) -> bool:
    return (a.text == b.text and ordered(a.data) == ordered(b.data) and ordered(a.root) == ordered(b.root)
            and a.starts == b.starts and a.owners == b.owners and a.entities == b.entities)


def piece(rng: random.Random, entity: tuple[str, str]) -> str:
    kind, name = entity
    table = f"t{rng.randrange(1000)}"  # (mostly) a table not opened before: most documents are valid
    if kind == "networks":
        header = rng.choice([f"[networks.{name}.{table}]", f"[[networks.{name}.forwards]]",
                             f"[[ networks . {name} . forwards ]]"] * 3 + [f"[networks.{name}]", f"[networks.{name}.dhcp]"])
        keys = [f'proto = "tcp"', f"host_port = {rng.randrange(1, 65536)}", f'guest = "g{rng.randrange(9)}"',
                f'mode = "nat"', "isolated = true", 'subnet = "10.0.0.0/24"', "ports = [1, 2]"]
    else:
        header = rng.choice([f"[[guests.{name}.nics]]", f"[guests.{name}.{table}]"] * 3 + [f"[guests.{name}]"])
        keys = [f'network = "n{rng.randrange(5)}"', "queues = 4", f"ip = '10.0.0.{rng.randrange(256)}'",
                'mac = "52:54:00:00:00:01"', "inline = { a = 1 }"]
    lines = rng.sample(keys, rng.randrange(0, 4))
    if rng.random() < 0.1:
        lines.insert(rng.randrange(len(lines) + 1), "# a comment")
    return "\n".join([header] + lines) + "\n" + ("\n" if rng.random() < 0.5 else "")


def entity(rng: random.Random) -> tuple[str, str]:
    return (rng.choice(["networks", "guests"]), f"{'n' if rng.random() < 0.5 else 'g'}{rng.randrange(8)}")


def document(rng: random.Random) -> list[str]:
    root = rng.choice(['name = "t"\n\n', "", "# top\n", 'name = "t"\nfirewall = "auto"\n'])
    return [root] + [piece(rng, entity(rng)) for _ in range(rng.randrange(1, 25))]


ODD_LINES = ["[networks]\n", "[networks.n1\n", "x = [\n", 'x = """\n', "networks = 1\n", "  [guests.g1]\n",
             "[\"q\".x]\n", "[guests.g1]\n", "= 1\n", "\n", "k = \"a\\\"b\"\n", "[[guests]]\n", "[guests . g2 . nics]\n"]


def edit(rng: random.Random, parts: list[str]) -> list[str]:
    parts = list(parts)
    choice = rng.randrange(8)
    i = rng.randrange(1, len(parts)) if len(parts) > 1 else 1
    if choice == 0:
        parts.insert(rng.randrange(1, len(parts) + 1), piece(rng, entity(rng)))
    elif choice == 1 and len(parts) > 1:
        del parts[i]
    elif choice == 2 and len(parts) > 2:
        moved = parts.pop(i)
        parts.insert(rng.randrange(1, len(parts) + 1), moved)
    elif choice == 3 and len(parts) > 1:
        lines = parts[i].splitlines(keepends=True)
        lines[rng.randrange(len(lines))] = rng.choice(['guest_port = 80\n', 'host_port = 1\n', "queues = 2\n"])
        parts[i] = "".join(lines)
    elif choice == 4:
        j = rng.randrange(len(parts))
        lines = parts[j].splitlines(keepends=True)
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(ODD_LINES))
        parts[j] = "".join(lines)
    elif choice == 5:
        parts[0] = rng.choice(['name = "u"\n', "", "guests = 3\n", "networks.n0.mode = \"nat\"\n", "x = { y = 1 }\n"])
    else:  # one character anywhere
        text = "".join(parts)
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(["", "[", "]", "\n", ".", "x", "#", '"']) + text[at + rng.randrange(2):]
        parts = [text]
    return parts


@pytest.mark.parametrize("seed", range(40))
def test_a_reread_edit_is_what_a_whole_read_gives(seed):
    rng = random.Random(seed)
    parts = document(rng)
    reused = declined = 0
    for _ in range(80):
        old_text = "".join(parts)
        _, old = tomledit.parse(old_text)
        if old is None:  # an edit made it invalid: mostly start again
            parts = document(rng) if rng.random() < 0.5 else edit(rng, parts)
            continue
        parts = edit(rng, parts) if rng.random() < 0.9 else document(rng)
        new_text = "".join(parts)
        data, whole = tomledit.parse(new_text)
        again = tomledit.reparse(old, new_text)
        if whole is None:  # not a text tomlfast reads, or one read whole every time
            assert again is None, (old_text, new_text)
            declined += 1
            continue
        reused += 1
        assert again is not None and same(again, whole), (old_text, new_text)
        assert ordered(data) == ordered(again.data)
    assert reused > 10 and declined > 0


def big(guests: int, extra: str = "") -> str:
    out = ['name = "big"\n\n']
    for n in range(4):
        out.append(f'[networks.n{n}]\nmode = "nat"\nsubnet = "10.{n}.0.0/16"\n\n')
    for k in range(guests * 4):
        out.append(f'[[networks.n{k % 4}.forwards]]\nproto = "tcp"\nhost_port = {1000 + k}\nguest = "g{k % guests}"\n\n')
    out.append(extra)
    for g in range(guests):
        out.append(f'[guests.g{g}]\n[[guests.g{g}.nics]]\nnetwork = "n{g % 4}"\n\n')
    return "".join(out)


def test_adding_and_removing_a_guest_reads_only_what_changed(monkeypatch):
    base = big(200)
    added = big(200, '[[networks.n0.forwards]]\nproto = "tcp"\nhost_port = 9\nguest = "gx"\n\n') \
        + '[guests.gx]\n[[guests.gx.nics]]\nnetwork = "n0"\n'
    _, old = tomledit.parse(base)
    read: list[str] = []
    real = tomlfast.loads
    monkeypatch.setattr(tomlfast, "loads", lambda text, *a: read.append(text) or real(text, *a))
    for before, after in ((old, added), (None, base)):
        before = before or tomledit.parse(added)[1]
        again = tomledit.reparse(before, after)
        assert same(again, tomledit.parse(after)[1])
    # n0 (its 200 forwards and the new one) and gx were read again, nothing else: 2 for the add, 1 for
    # the removal (gx is gone), besides the two whole reads above
    entity_reads = [t for t in read if len(t) < len(base) // 2]
    assert [t.splitlines()[0] for t in entity_reads] == ["[networks.n0]", "[guests.gx]", "[networks.n0]"]


def test_an_unchanged_text_is_the_same_read():
    _, old = tomledit.parse(big(10))
    assert tomledit.reparse(old, big(10)) is old


@pytest.mark.parametrize("text", ["[networks]\n[networks.n0]\n", 'x = 1\n[a]\nb = 2\n', "[a.b]\n[a]\nc = 1\n"])
def test_a_header_of_one_key_means_the_file_is_read_whole(text):
    data, parsed = tomledit.parse(text)
    assert data is not None and parsed is None


def test_a_kept_read_is_checked_before_use():
    _, old = tomledit.parse(big(3))
    assert tomledit.undump(old.dump()) is not None
    assert same(tomledit.undump(old.dump()), old)
    assert tomledit.undump(("x",)) is None
    assert tomledit.undump(old.dump()[:4] + ([("a",)],)) is None
    assert tomledit.undump(old.dump()[:3] + (old.owners[:-1], old.entities)) is None


@pytest.mark.parametrize("old_text, new_text", [
    ('k = 1\n[guests.a]\nx = 1\n', 'k = 1[guests.a]\nx = 1\n'),  # a header no longer at a line's start
    ('[guests.b]\nk = 1\n[guests.a]\nx = 1\n', '[guests.b]\nk = 1[guests.a]\nx = 1\n'),
    ('[guests.b]\nk = 1\n[guests.a]\nx = 1\n', '[guests.b]\nk = 1\n# [guests.a]\nx = 1\n'),  # nor a header
])
def test_an_edit_next_to_a_header_is_not_read_past(old_text, new_text):
    _, old = tomledit.parse(old_text)
    again = tomledit.reparse(old, new_text)
    whole = tomledit.parse(new_text)[1]
    assert (again is None and whole is None) or same(again, whole)
