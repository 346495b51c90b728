"""Topologies written inline in unit tests: load one, or get the problems it is refused with."""

import textwrap

import pytest

from kvmnet import config
from kvmnet.errors import InputError


def load(text: str):
    """The topology in `text` (dedented), as file t.toml."""
    return config.load_text(textwrap.dedent(text), "t.toml")


def problems(text: str) -> list[str]:
    """The `t.toml:LINE: key: reason` lines `text` is refused with (it must be refused)."""
    with pytest.raises(InputError) as exc:
        load(text)
    return [str(p) for p in exc.value.problems]
