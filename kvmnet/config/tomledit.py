"""Re-read an edited topology file from the way an earlier run read it: only what the edit touched.

Adding a guest to a 65,000-line file should not parse 65,000 lines again (~45 ms of a small
change's ~300). A file tomlfast.py reads is a root section (keys before the first header) and
pieces, each a `[table]` or `[[array]]` header line and the lines up to the next header. Every
header of a topology names at least two keys (`[networks.n0]`, `[[guests.g1.nics]]`), and the
first two name the *entity* the piece belongs to. TOML's rules never reach across entities: an
entity's value in the document is what its own pieces, read alone and in order, make of it, and
the document is the root section's keys followed by the entities, in the order each first
appears. (A header of one key, like `[networks]`, breaks that: such files are read whole,
always. A root key that is also a table's first key makes a file TOML refuses: declined too.)

So `reparse` finds where the old and new texts differ (their common start and end), lists the
headers in between, and parses again only the entities whose pieces there are not the same
text as before; every other entity's value is the earlier run's. The result is the dict
tomlfast.loads(new text) returns, or None when unsure: the caller then reads the whole text.
tests/unit/test_tomledit.py compares the two on thousands of random edits.

The earlier parse comes from the state dir's cache, trusted as the state dir is (root's, private)
and checked for its types only: a kept parse that does not belong to its text would go unnoticed.
"""

from __future__ import annotations

import bisect
import re
from . import tomlfast

# a header line's first two keys (the line's offset is the match's start + 1: after its newline)
_BARE = tomlfast._BARE
_ENTITY = r"[ \t]*+\[\[?[ \t]*+(" + _BARE + r")[ \t]*+\.[ \t]*+(" + _BARE + r")"
_BRACKET = r"[ \t]*+\["  # how every header line starts, and no other line tomlfast reads
_NEXT_HEADER = re.compile(r"\n(?=" + _BRACKET + ")", re.ASCII)
_IS_HEADER = re.compile(_BRACKET, re.ASCII)
_HEADER = re.compile(_ENTITY, re.ASCII)
_SPLIT = tomlfast._SPLIT


class Parsed:
    """A text as tomlfast read it, and where its pieces are, for reading its next edit.
    (A plain class: a dataclass costs ~0.6 ms of every start to make.)"""

    __slots__ = ("text", "data", "starts", "owners", "entities")

    def __init__(self, text: str, data: dict, starts: list, owners: list, entities: list):
        self.text = text
        self.data = data  # what tomlfast.loads(text) returned
        self.starts = starts  # the offset of each header line, in order
        self.owners = owners  # the entity (an index into entities) of each header line
        self.entities = entities  # (first key, second key) of each entity, in order of first appearance

    @property
    def root(self) -> dict:
        """The keys before the first header: every key of the document no header opens."""
        tables = {first for first, _ in self.entities}
        return {k: v for k, v in self.data.items() if k not in tables}

    def dump(self) -> tuple:  # (in __init__'s order: undump makes a Parsed of it)
        return (self.text, self.data, self.starts, self.owners, self.entities)


def parse(text: str) -> tuple[dict | None, Parsed | None]:
    """tomlfast.loads(text), and the Parsed that reparse() can start from (None: a file read
    whole every time, see above)."""
    headers: list = []
    data = tomlfast.loads(text, headers)
    return data, (None if data is None else _indexed(text, data, headers))


def undump(value) -> Parsed | None:
    """A Parsed from dump()'s tuple (as a cache kept it), or None if it is not one."""
    if not (type(value) is tuple and len(value) == 5 and type(value[0]) is str and type(value[1]) is dict
            and all(type(v) is list for v in value[2:])):
        return None
    parsed = Parsed(*value)
    if len(parsed.starts) != len(parsed.owners) or not all(
            type(e) is tuple and len(e) == 2 and type(e[0]) is str and type(e[1]) is str for e in parsed.entities):
        return None
    return parsed


def reparse(old: Parsed, text: str) -> Parsed | None:
    """What parse(text)[1] would be, reading again only the entities the edit from old.text touched."""
    if "\r" in text:
        return None
    try:
        return _reparse(old, text)
    except (IndexError, KeyError, TypeError):  # a kept Parsed whose index is out of shape: read it whole
        return None


def _indexed(text: str, data: dict, headers: list) -> Parsed | None:
    entity_of: dict = {}  # a header's dotted text -> its entity (a file repeats [[x.forwards]] often)
    index: dict = {}
    starts, owners, entities = [], [], []
    for offset, dotted in headers:
        owner = entity_of.get(dotted)
        if owner is None:
            keys = _SPLIT.split(dotted)
            if len(keys) < 2:
                return None
            owner = entity_of[dotted] = index.setdefault((keys[0], keys[1]), len(index))
            if owner == len(entities):
                entities.append((keys[0], keys[1]))
        starts.append(offset)
        owners.append(owner)
    return Parsed(text, data, starts, owners, entities)


def _reparse(old: Parsed, text: str) -> Parsed | None:
    start, end = _changed_span(old.text, text)
    if start is None:
        return old
    starts, shift = old.starts, len(text) - len(old.text)
    # pieces first..last-1 of the old text are read again: the one holding the last unchanged
    # character (an insertion right after it may have added lines to it) through the last one
    # not entirely in the common end (the newline before a piece must be in it as well)
    first = bisect.bisect_right(starts, start - 1) - 1 if start > 0 else -1
    last = max(bisect.bisect_left(starts, len(old.text) - end + 1), first + 1)
    lo = starts[first] if first >= 0 else 0
    hi = starts[last] + shift if last < len(starts) else len(text)
    window = _headers(text, lo, hi, first >= 0)
    if window is None:
        return None
    root = old.root if first >= 0 else tomlfast.loads(text[:window[0][0] if window else hi])
    if root is None:
        return None
    ids = {e: i for i, e in enumerate(old.entities)}
    new_owners = [ids.setdefault(entity, len(ids)) for _, entity in window]
    entities = old.entities + list(ids)[len(old.entities):]
    changed = _changed_entities(old, first, last, text, window, new_owners, hi)
    kept = max(first, 0)  # the pieces before the window, as they were
    starts = starts[:kept] + [offset for offset, _ in window] + [s + shift for s in starts[last:]]
    owners = old.owners[:kept] + new_owners + old.owners[last:]
    fresh = _read_entities(text, starts, owners, entities, changed)
    if fresh is None:
        return None
    return _assembled(old, text, root, starts, owners, entities, fresh)


def _changed_span(old: str, new: str) -> tuple[int | None, int]:
    """(length of the common start, length of the common end not overlapping it); None, 0 if equal."""
    if old == new:
        return None, 0
    n = min(len(old), len(new))
    lo, hi = 0, n + 1  # old[:lo] == new[:lo]; old[:hi] != new[:hi] (or past the shorter)
    while hi - lo > 1:  # bisect on slices: compared by memcmp, ~1 ms for a 1 MB file
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if old[lo:mid] == new[lo:mid] else (lo, mid)
    cap = n - lo
    e_lo, e_hi = 0, cap + 1
    while e_hi - e_lo > 1:
        mid = (e_lo + e_hi) // 2
        same = old[len(old) - mid:len(old) - e_lo] == new[len(new) - mid:len(new) - e_lo]
        e_lo, e_hi = (mid, e_hi) if same else (e_lo, mid)
    return lo, e_lo


def _headers(text: str, lo: int, hi: int, at_lo: bool) -> list | None:
    """(offset, entity) of each header line in text[lo:hi]; `at_lo`: one must start at lo."""
    out = []
    offsets = ([lo] if _IS_HEADER.match(text, lo, hi) else []) + [m.end() for m in _NEXT_HEADER.finditer(text, lo, hi)]
    if at_lo and (not offsets or offsets[0] != lo):
        return None
    for offset in offsets:
        m = _HEADER.match(text, offset, hi)
        if m is None:  # a header of one key, a quoted key, or no header at all: read the text whole
            return None
        out.append((offset, (m[1], m[2])))
    return out


def _changed_entities(old: Parsed, first: int, last: int, text: str, window: list, new_owners: list,
                      hi: int) -> set:
    """The entities whose pieces in the window are not the same texts, in the same order, as before."""
    before: dict = {}
    for i in range(max(first, 0), last):
        end = old.starts[i + 1] if i + 1 < len(old.starts) else len(old.text)
        before.setdefault(old.owners[i], []).append(old.text[old.starts[i]:end])
    after: dict = {}
    for j, owner in enumerate(new_owners):
        end = window[j + 1][0] if j + 1 < len(window) else hi
        after.setdefault(owner, []).append(text[window[j][0]:end])
    return {e for e in before.keys() | after.keys() if before.get(e) != after.get(e)}


def _read_entities(text: str, starts: list, owners: list, entities: list, changed: set) -> dict | None:
    """entity -> its value, read from its pieces alone, for each changed entity still in the text."""
    pieces: dict = {}
    for i, owner in enumerate(owners):
        if owner in changed:
            end = starts[i + 1] if i + 1 < len(starts) else len(text)
            pieces.setdefault(owner, []).append(text[starts[i]:end])
    fresh = {}
    for owner, texts in pieces.items():
        data = tomlfast.loads("".join(texts))
        first, second = entities[owner]
        if data is None or list(data) != [first] or list(data[first]) != [second]:
            return None
        fresh[owner] = data[first][second]
    return fresh


def _assembled(old: Parsed, text: str, root: dict, starts: list, owners: list, entities: list,
               fresh: dict) -> Parsed | None:
    order = list(dict.fromkeys(owners))  # entities by first appearance, as a whole read makes them
    renumber = {e: i for i, e in enumerate(order)}
    data = dict(root)
    for e in order:
        first, second = entities[e]
        if first in root:  # a root key that a header also opens: the whole read decides
            return None
        data.setdefault(first, {})[second] = fresh[e] if e in fresh else old.data[first][second]
    return Parsed(text, data, starts, [renumber[o] for o in owners], [entities[e] for e in order])
