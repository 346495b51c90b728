"""A commented TOML document built key by key, written as text (tomllib only reads). Only what
generated topologies need: strings, integers, booleans, inline tables of strings."""

from __future__ import annotations

import json

from .tomlpos import format_path


class TomlDoc:
    def __init__(self) -> None:
        self.header: list[str] = []
        self.tables: dict[tuple, list[tuple[str, object, str | None]]] = {(): []}
        self.notes: dict[tuple, list[str]] = {}

    def put(self, table: tuple, key: str, value, comment: str | None = None) -> None:
        self.tables.setdefault(table, []).append((key, value, comment))

    def note(self, table: tuple, comment: str) -> None:
        """A comment line right below the table's header."""
        self.tables.setdefault(table, [])
        self.notes.setdefault(table, []).append(comment)

    def text(self) -> str:
        out = [f"# {line}".rstrip() for line in self.header]
        for table, entries in self.tables.items():
            if table:
                out.append("")
                array = isinstance(table[-1], int)
                name = format_path(table[:-1] if array else table)
                out.append(f"[[{name}]]" if array else f"[{name}]")
                out += [f"# {line}" for line in self.notes.get(table, [])]
            for key, value, comment in entries:
                line = f"{key} = {value_text(value)}"
                out.append(f"{line:<40} # {comment}" if comment else line)
        return "\n".join(out) + "\n"


def value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{string(k)} = {value_text(v)}" for k, v in value.items()) + " }"
    return string(str(value))


def string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
