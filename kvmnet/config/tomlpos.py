"""Find the line of a key path in TOML text, for error messages (tomllib gives no positions).

A line scanner, not a parser: it follows [table] and [[array]] headers and `key =` lines,
which is how topology files are written. Paths it cannot place fall back to their parent.
"""

from __future__ import annotations

import re

Path = tuple  # of str and int (array index)

# possessive quantifiers: no backtracking, so a line of 4000 spaces costs microseconds, not minutes
# patterns compiled at their first use: a file without problems never needs them (each compile
# at import was ~0.1-0.3 ms of every apply)
_HEADER = r"^[ \t]*+(\[\[?)([^\]]*+)\]"
_KEY = r"^[ \t]*+([A-Za-z0-9_\-\"'. \t]++)="


def _split_dotted(text: str) -> list[str]:
    parts, cur, quote = [], "", None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def key_lines(text: str) -> dict[Path, int]:
    lines: dict[Path, int] = {}
    counters: dict[Path, int] = {}
    table: Path = ()
    header_at, key_at = re.compile(_HEADER).match, re.compile(_KEY).match  # (re's cache: compiled once)
    for number, line in enumerate(text.split("\n"), start=1):  # TOML's lines: not U+2028 & co
        header = header_at(line)
        if header:
            names = _split_dotted(header.group(2).strip())
            path: list = []
            is_array = header.group(1) == "[["
            for i, name in enumerate(names):  # resolve earlier array headers to their current element
                path.append(name)
                last = i == len(names) - 1
                if tuple(path) in counters and not (is_array and last):
                    path.append(counters[tuple(path)])
            if is_array:
                key = tuple(path)
                counters[key] = counters.get(key, -1) + 1
                path.append(counters[key])
            table = tuple(path)
            lines.setdefault(table, number)
            continue
        key = key_at(line)
        if key and not line.lstrip().startswith("#"):
            lines.setdefault(table + tuple(_split_dotted(key.group(1).strip())), number)
    return lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


_PLAIN = r"[A-Za-z0-9_\-]+"


def format_path(path: Path) -> str:
    """networks.default.dhcp.end, guests.web.nics[0].mac; odd names quoted ("a b", "../x")."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part) if re.fullmatch(_PLAIN, str(part), re.ASCII) else '"' + str(part).encode("unicode_escape").decode().replace('"', '\\"') + '"'
            out += ("." if out else "") + name
    return out
