"""kvmnet/frozen.py: @value classes behave as dataclass(frozen=True) ones: ==, hash, repr,
frozenness, replace, compare=False and repr=False fields, cached properties."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import pytest

from kvmnet import model, observed
from kvmnet.frozen import value


def shapes(decorate):
    @decorate
    class Pair:
        a: int
        b: tuple = ()
        hidden: str = dataclasses.field(default="", compare=False, repr=False)

        @cached_property
        def total(self) -> int:
            return self.a + len(self.b)

    @decorate
    class One:
        a: object

    @decorate
    class Empty:
        pass

    return Pair, One, Empty


OURS, THEIRS = shapes(value), shapes(dataclasses.dataclass(frozen=True))
SAMPLES = [((1, (2, 3), "x"), (1, (2, 3), "y")), ((1, (), ""), (2, (), "")), ((0,), (0,)), (([1],), ([1],)),
           ((float("nan"),), (float("nan"),))]


@pytest.mark.parametrize("which", range(3))
def test_equal_hash_and_repr_as_a_frozen_dataclass(which):
    ours, theirs = OURS[which], THEIRS[which]
    width = len(dataclasses.fields(ours))
    for left, right in SAMPLES:
        left, right = left[:width], right[:width]
        if len(left) < width:
            continue
        a, b, x, y = ours(*left), ours(*right), theirs(*left), theirs(*right)
        assert (a == b) == (x == y) and (a != b) == (x != y)
        assert repr(a) == repr(x) and repr(b) == repr(y)
        try:
            expected = hash(x) == hash(y)
        except TypeError:
            with pytest.raises(TypeError):
                hash(a)
            continue
        assert (hash(a) == hash(b)) == expected
    assert ours(*SAMPLES[0][0][:width]) != theirs(*SAMPLES[0][0][:width])  # another class: never equal
    assert (ours.__eq__(ours(*SAMPLES[0][0][:width]), 1)) is NotImplemented


def test_frozen_replace_and_cached_property_as_before():
    pair = OURS[0](1, (2,), "h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.a = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del pair.b
    assert pair.total == 2 and dataclasses.replace(pair, a=5).total == 6
    assert dataclasses.replace(pair, hidden="other") == pair and dataclasses.is_dataclass(pair)
    assert dataclasses.asdict(pair) == {"a": 1, "b": (2,), "hidden": "h"}


def test_the_model_and_observed_values_are_value_classes():
    for module in (model, observed):
        classes = [c for c in vars(module).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
                   and c.__module__ == module.__name__]
        assert classes and all(c.__eq__ is OURS[0].__eq__ for c in classes), module.__name__


def test_what_value_cannot_honour_is_refused():
    with pytest.raises(TypeError, match="defines __eq__"):
        @value
        class Own:
            a: int

            def __eq__(self, other):
                return True
    with pytest.raises(TypeError, match="hash"):
        @value
        class Hashless:
            a: int = dataclasses.field(hash=False)
