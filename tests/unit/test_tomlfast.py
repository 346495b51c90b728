"""config/tomlfast.py reads what it reads exactly as tomllib does, and gives up (None: tomllib
reads the whole text) on anything tomllib refuses, so error messages and lines stay tomllib's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from kvmnet.config import loader, tomlfast
from kvmnet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["a", "b", "c", "x"]
VALUES = ["1", "-0", "+7", "007", "1_000", '"s"', "'lit'", '"e\\n"', '""', "''", "true", "false", "truex",
          "[1, 2]", "[]", "{y = 1}", "{}", "1.5", '"""m"""', "[", '"open', "1979-05-27", "0x1f", "inf",
          '"tab\there"', '"ctl\x01"', '"é"', "[[1], {z = 2}]", "1 2"]
EQUALS = ["=", " = ", "\t="]
TAILS = ["", "  ", " # note", "\t#", " #\x01", " x"]


def _typed(value):
    """The value with types made visible: True == 1 for ==, not for this."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _path(draw) -> str:
    parts = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
    return draw(st.sampled_from([".", " . ", "."])).join(parts)


@st.composite
def line(draw) -> str:
    kind = draw(st.sampled_from(["table", "array", "kv", "kv", "kv", "odd", "blank"]))
    tail = draw(st.sampled_from(TAILS))
    lead = draw(st.sampled_from(["", "  ", "\t"]))
    if kind == "table":
        return f"{lead}[{draw(st.sampled_from(['', ' ']))}{_path(draw)}]{tail}"
    if kind == "array":
        return f"{lead}[[{_path(draw)}{draw(st.sampled_from(['', ' ']))}]]{tail}"
    if kind == "kv":
        key, eq, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(EQUALS)), draw(st.sampled_from(VALUES))
        return f"{lead}{key}{eq}{value}{tail}"
    if kind == "odd":
        return draw(st.sampled_from(["[ [a]]", "[a]]", "[[a]", "a.b = 1", '"q" = 1', "a = 1 b = 2", "# c", "=1",
                                     "[a] x = 1", "x = 1\r", "\ufeffx = 1", "[]", "[[]]", "[a.]", "x =", "x y = 1"]))
    return lead + tail.strip(" x")


@settings(max_examples=2000, deadline=None)
@example(["[a.]"], "\n", False)  # Python 3.11's re mis-matched a possessive group here
@given(st.lists(line(), max_size=14), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_same_dict_as_tomllib_or_none(lines, newline, final_newline):
    text = newline.join(lines) + (newline if final_newline else "")
    try:
        want = _typed(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        want = "refused"
    got = tomlfast.loads(text)
    if want == "refused":
        assert got is None, f"tomllib refuses this, tomlfast read {got!r}:\n{text}"
    elif got is not None:
        assert _typed(got) == want, text


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_topology_takes_the_fast_path(path):
    text = path.read_text()
    got = tomlfast.loads(text)
    assert got is not None and _typed(got) == _typed(tomllib.loads(text))


def test_a_big_topology_takes_the_fast_path():
    from bench.sections.scale import big_toml
    text = big_toml("big", 4, 40, 400)
    got = tomlfast.loads(text)
    assert got is not None and _typed(got) == _typed(tomllib.loads(text))


@pytest.mark.parametrize("text, where", [
    ('name = "t"\n[networks.a]\nmode = "nat"\n[networks.a]\n', "t.toml:4: TOML syntax error: Cannot declare ('networks', 'a') twice (at line 4, column 12)"),
    ('name = "t"\nname = "u"\n', "t.toml:2: TOML syntax error: Cannot overwrite a value (at line 2, column 11)"),
    ('name = "t"\n[[networks.a.forwards]]\nproto = "tcp"\nproto = "udp"\n',
     "t.toml:4: TOML syntax error: Cannot overwrite a value (at line 4, column 14)"),
    ('name = "t"\n[a.]\n', "t.toml:2: TOML syntax error: Invalid initial character for a key part (at line 2, column 4)"),
])
def test_errors_are_tomllibs_with_their_line(text, where):
    with pytest.raises(InputError) as exc:
        loader.load_text(text, "t.toml")
    assert str(exc.value.problems[0]).startswith(where), str(exc.value.problems[0])


@pytest.mark.parametrize("value", ["1" * 5000, "[" + "1" * 5000 + "]", "1_" + "1" * 5000, "-" + "1" * 4400])
def test_a_number_past_pythons_digit_limit_is_an_input_error_with_its_line(value):
    """int() of more than 4300 digits raises ValueError, in tomllib and in the fast path alike:
    a FILE:LINE message, not a traceback."""
    with pytest.raises(InputError) as exc:
        loader.load_text(f'name = "t"\nmtu = {value}\n', "t.toml")
    assert str(exc.value).startswith("t.toml:2: ") and "4300 digits" in str(exc.value)


def test_a_long_number_within_the_limit_is_read_by_tomllib():
    assert tomlfast.loads("x = " + "1" * 4100) is None
    assert tomllib.loads("x = " + "1" * 4100)["x"] == int("1" * 4100)
