"""A fast path for the TOML that topology files are made of; tomllib stays the judge.

tomllib reads a 65,000-line topology (1000 guests, 10,000 forwards) in ~200 ms, most of it
character-by-character scanning. Topology files are line-shaped: `[table]` and `[[array]]`
headers of bare keys, `key = value` with one bare key, comments. `loads` reads exactly those
lines, one match of one regular expression per line (~45 ms for that file), and builds the
same dict tomllib would, following tomllib's own rules for what a header may open (its
EXPLICIT_NEST and FROZEN flags, kept here in the same shape). Any line outside that shape, and
any line tomllib would refuse, makes it return None: the caller then runs tomllib on the whole
text, so every error message and line number is tomllib's. Values other than plain strings,
decimal integers and booleans (arrays, inline tables, escapes, floats, dates) are handed to
tomllib one line at a time.

tests/unit/test_tomlfast.py compares it with tomllib on generated documents.
"""

from __future__ import annotations

import re

# Possessive quantifiers on character classes only: on groups, Python 3.11's re mis-matches
# ("[a.]" read as the table "a" . "")
# TOML's comment: any character but the ASCII controls other than tab
_COMMENT = r"(?:#[^\x00-\x08\x0a-\x1f\x7f]*+)?$"
_TAIL = r"[ \t]*+" + _COMMENT
_BARE = r"[A-Za-z0-9_-]++"
_DOTTED = _BARE + r"(?:[ \t]*+\.[ \t]*+" + _BARE + r")*"
_TABLE = r"[ \t]*+\[[ \t]*+(" + _DOTTED + r")[ \t]*+\]" + _TAIL
_ARRAY = r"[ \t]*+\[\[[ \t]*+(" + _DOTTED + r")[ \t]*+\]\]" + _TAIL
_SKIP = r"[ \t]*+" + _COMMENT
_KEY = r"[ \t]*+(" + _BARE + r")[ \t]*+=[ \t]*+"
# plain one-line strings (no escapes), decimal integers, booleans
_PLAIN = (r"(?:\"([^\"\\\x00-\x08\x0a-\x1f\x7f]*+)\"|'([^'\x00-\x08\x0a-\x1f\x7f]*+)'"
          r"|([+-]?+(?:0|[1-9][0-9]*+))|(true|false))" + _TAIL)
# One line, whichever of these it is, with its newline: one match per line (the 65,000-line file
# in ~half the time of one pattern after another). The group that closed last (lastindex) says
# which: 2-5 `key = plain value` (group 1 the key), 6 [table], 7 [[array]], 9 `key = other`
# (8 the key), 10 a line of none of these shapes; None a blank or comment line.
_LINE = re.compile(r"(?:" + _KEY + _PLAIN + "|" + _TABLE + "|" + _ARRAY + "|" + _SKIP
                   + "|" + _KEY + r"([^\n]*+)|([^\n]*+))(?:\n|\Z)", re.ASCII | re.M)
(_STRING, _LITERAL, _NUMBER, _BOOLEAN, _TABLE_LINE, _ARRAY_LINE, _OTHER_VALUE) = (2, 3, 4, 5, 6, 7, 9)
_SPLIT = re.compile(r"[ \t]*+\.[ \t]*+")
_INT_DIGITS = 4000  # (sys.int_info.default_max_str_digits is 4300; the sign and zeros stay under it)


class _Unsure(Exception):
    """A line tomllib might read differently or refuse: tomllib reads the whole text."""


class _Flags:
    """tomllib's flags by key path (list indexes left out): explicit tables, frozen values."""

    def __init__(self):
        self.root: dict = {}
        self.arrays: set[int] = set()  # id() of the lists [[headers]] made (alive in the document)

    def node(self, key: tuple) -> dict:
        cont = self.root
        for k in key[:-1]:
            cont = cont.setdefault(k, [set(), {}])[1]
        return cont.setdefault(key[-1], [set(), {}])

    def has(self, key: tuple, flag: str) -> bool:
        """Set on key itself, or `frozen` on a key above it (frozen is recursive)."""
        cont = self.root
        for k in key[:-1]:
            if k not in cont:
                return False
            if "frozen" in cont[k][0]:
                return True
            cont = cont[k][1]
        return key[-1] in cont and (flag in cont[key[-1]][0] or "frozen" in cont[key[-1]][0])

    def clear_under(self, key: tuple) -> None:
        cont = self.root
        for k in key[:-1]:
            if k not in cont:
                return
            cont = cont[k][1]
        cont.pop(key[-1], None)


def loads(text: str, headers: list | None = None) -> dict | None:
    """The dict tomllib.loads(text) returns, or None when unsure (then ask tomllib).
    `headers`, if given, gets (offset, key path) of each [table] and [[array]] line, in order."""
    if "\r" in text:
        return None
    try:
        return _read(text, headers)
    except _Unsure:
        return None


def _read(text: str, headers: list | None = None) -> dict:
    root: dict = {}
    flags = _Flags()
    table, header = root, ()
    last: tuple = (None, None, None)  # the last [[array]] header's text, its flags node, its list
    for m in _LINE.finditer(text):
        kind = m.lastindex
        if kind is None:  # blank, or a comment
            continue
        if kind <= _BOOLEAN:
            key = m[1]
            if key in table:
                raise _Unsure
            if kind == _STRING or kind == _LITERAL:
                table[key] = m[kind]
            elif kind == _NUMBER:
                if len(m[kind]) > _INT_DIGITS:  # past Python's limit for int(str): tomllib's error
                    raise _Unsure
                table[key] = int(m[kind])
            else:
                table[key] = m[kind] == "true"
        elif kind == _ARRAY_LINE:
            dotted = m[kind]
            if headers is not None:
                headers.append((m.start(), dotted))
            if dotted == last[0]:  # [[x.forwards]] again, nothing else opened since: its next element
                last[1][1].clear()  # what the previous element declared is free again (tomllib: unset_all)
                last[2].append({})
                table = last[2][-1]
                continue
            header = tuple(_SPLIT.split(dotted))
            table = _append_table(root, flags, header)
            last = (dotted, flags.node(header), _nest(root, header[:-1])[header[-1]])
        elif kind == _TABLE_LINE:
            if headers is not None:
                headers.append((m.start(), m[kind]))
            header = tuple(_SPLIT.split(m[kind]))
            table = _open_table(root, flags, header)
            last = (None, None, None)
        elif kind == _OTHER_VALUE:
            key = m[kind - 1]
            if key in table:
                raise _Unsure
            table[key] = _other_value(m[kind], flags, header + (key,))
        else:
            raise _Unsure
    return root


def _other_value(rest: str, flags: _Flags, key: tuple):
    """A value of one line that is not a plain string, integer or boolean: tomllib's reading."""
    import tomllib  # (here: files of plain values only never load it)

    try:
        value = tomllib.loads("v = " + rest)["v"]
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):  # tomllib decides, and says why, on the whole text
        raise _Unsure from None
    if isinstance(value, (dict, list)):  # inline tables and arrays are immutable namespaces
        flags.node(key)[0].add("frozen")
    return value


def _nest(root: dict, key: tuple) -> dict:
    """tomllib's get_or_create_nest: tables on the way are made, arrays mean their last table."""
    cont = root
    for k in key:
        if k not in cont:
            cont[k] = {}
        cont = cont[k]
        if isinstance(cont, list):
            if not cont:
                raise _Unsure
            cont = cont[-1]
        if not isinstance(cont, dict):
            raise _Unsure
    return cont


def _open_table(root: dict, flags: _Flags, key: tuple) -> dict:
    if flags.has(key, "explicit"):
        raise _Unsure
    flags.node(key)[0].add("explicit")
    return _nest(root, key)


def _append_table(root: dict, flags: _Flags, key: tuple) -> dict:
    if flags.has(key, "frozen"):
        raise _Unsure
    flags.clear_under(key)  # a new element: what the previous one declared is free again
    flags.node(key)[0].add("explicit")
    parent = _nest(root, key[:-1])
    entries = parent.get(key[-1])
    if entries is None:
        entries = parent[key[-1]] = []
        flags.arrays.add(id(entries))
    elif id(entries) not in flags.arrays:  # a value (frozen, refused above) or a table
        raise _Unsure
    entries.append({})
    return entries[-1]
