"""The loader with one of its shortcuts for common shapes (forwards.py's, guests.py's), then
without it: a shortcut must make exactly what the full path makes, problems included."""

from __future__ import annotations

from kvmnet.config import loader
from kvmnet.errors import InputError


def load_both(text: str, file: str, monkeypatch, module, shortcut: str, declined=lambda *a: None) -> list:
    """[topology or problems with `module.shortcut`, the same with it always declining (what
    `declined` returns: None, or a list of Nones for a shortcut that takes a whole list)]."""
    out = []
    for taken in (True, False):
        if not taken:
            monkeypatch.setattr(module, shortcut, declined)
        try:
            out.append(loader.load_text(text, file))
        except InputError as exc:
            out.append([str(p) for p in exc.problems])
    return out
