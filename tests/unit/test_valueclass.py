"""kvmnet/valueclass.py: @value classes behave as dataclass(frozen=True) ones and @mutable ones
as dataclass() ones (==, hash, repr, frozenness, __init__'s arguments and errors, defaults and
default_factory, init=False, compare=False and repr=False fields, replace, asdict, cached
properties); each shape is made by both and compared."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import pytest

from kvmnet import model, observed, valueclass
from kvmnet.engine import record, steps
from kvmnet.valueclass import FrozenInstanceError, mutable, value


def shapes(decorate, field):
    @decorate
    class Pair:
        a: int
        b: tuple = ()
        hidden: str = field(default="", compare=False, repr=False)

        @cached_property
        def total(self) -> int:
            return self.a + len(self.b)

    @decorate
    class One:
        a: object

    @decorate
    class Empty:
        pass

    @decorate
    class Made:
        a: int
        items: list = field(default_factory=list)
        seen: tuple = field(default=(), init=False, repr=False, compare=False)
        note: str | None = None

    return Pair, One, Empty, Made


OURS, THEIRS = shapes(value, valueclass.field), shapes(dataclasses.dataclass(frozen=True), dataclasses.field)
OURS_MUTABLE, THEIRS_MUTABLE = shapes(mutable, valueclass.field), shapes(dataclasses.dataclass, dataclasses.field)
SAMPLES = [((1, (2, 3), "x"), (1, (2, 3), "y")), ((1, (), ""), (2, (), "")), ((0,), (0,)), (([1],), ([1],)),
           ((float("nan"),), (float("nan"),))]
PAIRS = [(OURS[i], THEIRS[i]) for i in range(3)] + [(OURS_MUTABLE[i], THEIRS_MUTABLE[i]) for i in range(3)]


@pytest.mark.parametrize("which", range(len(PAIRS)))
def test_equal_hash_and_repr_as_a_dataclass(which):
    ours, theirs = PAIRS[which]
    width = len(valueclass.fields(ours))
    assert width == len(dataclasses.fields(theirs))
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


CALLS = [((), {}), ((1,), {}), ((1, [2]), {}), ((1, [2], "n"), {}), ((), {"a": 1}), ((1,), {"note": "n"}),
         ((1,), {"note": "n", "items": [3]}), ((1, [2], "n", "extra"), {}), ((1,), {"a": 2}), ((1,), {"seen": ()}),
         ((1,), {"other": 2}), ((), {"items": []})]


@pytest.mark.parametrize("decorated", ["value", "mutable"])
@pytest.mark.parametrize("args, kwargs", CALLS)
def test_init_takes_and_refuses_what_a_dataclass_init_does(decorated, args, kwargs):
    ours, theirs = (OURS[3], THEIRS[3]) if decorated == "value" else (OURS_MUTABLE[3], THEIRS_MUTABLE[3])
    try:
        expected = theirs(*args, **kwargs)
    except TypeError as exc:
        with pytest.raises(TypeError) as got:
            ours(*args, **kwargs)
        assert str(got.value).split("()")[1:] == str(exc).split("()")[1:]  # the same words after the name
        return
    made = ours(*args, **kwargs)
    assert repr(made) == repr(expected) and vars(made) == vars(expected)
    assert list(vars(made)) == list(vars(expected))  # the fields in their order
    if len(args) < 2 and "items" not in kwargs:  # a default_factory's value: one per instance
        assert made.items == [] and made.items is not ours(*args, **kwargs).items


def test_frozen_mutable_replace_asdict_and_cached_property_as_before():
    pair = OURS[0](1, (2,), "h")
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'a'"):
        pair.a = 2
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'b'"):
        del pair.b
    assert isinstance(FrozenInstanceError(), AttributeError)
    assert pair.total == 2 and valueclass.replace(pair, a=5).total == 6
    assert valueclass.replace(pair, hidden="other") == pair and valueclass.is_value_class(type(pair))
    assert valueclass.asdict(pair) == {"a": 1, "b": (2,), "hidden": "h"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        valueclass.replace(pair, c=1)
    made = OURS_MUTABLE[3](1)
    made.a, made.seen = 2, (1,)
    assert (made.a, made.seen) == (2, (1,)) and made == OURS_MUTABLE[3](2)  # (seen: compare=False)
    with pytest.raises(ValueError, match="init=False"):
        valueclass.replace(made, seen=())
    nested = OURS_MUTABLE[3](1, [OURS[0](1)], None)
    assert valueclass.asdict(nested) == dataclasses.asdict(THEIRS_MUTABLE[3](1, [THEIRS[0](1)], None))


def test_the_class_attributes_are_the_defaults_as_dataclasses_leaves_them():
    for ours, theirs in zip(OURS_MUTABLE, THEIRS_MUTABLE):
        for name in ("a", "b", "hidden", "items", "seen", "note"):
            assert getattr(ours, name, "none") == getattr(theirs, name, "none"), (ours, name)


def test_kvmnets_classes_are_value_classes_and_need_no_dataclasses():
    for module in (model, observed, steps, record):
        classes = [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == module.__name__
                   and valueclass.is_value_class(c)]
        assert classes and all(c.__eq__ is OURS[0].__eq__ for c in classes), module.__name__
        assert not any(dataclasses.is_dataclass(c) for c in vars(module).values() if isinstance(c, type))
    assert record.Record.__hash__ is None and hash(model.Dhcp(*[model.IPv4Address("10.0.0.2")] * 2)) is not None


def test_what_valueclass_cannot_honour_is_refused():
    with pytest.raises(TypeError, match="defines __eq__"):
        @value
        class Own:
            a: int

            def __eq__(self, other):
                return True
    with pytest.raises(TypeError, match="defines __post_init__"):
        @mutable
        class Later:
            a: int

            def __post_init__(self):
                pass
    with pytest.raises(TypeError, match="hash"):
        valueclass.field(hash=False)
    with pytest.raises(TypeError, match="ClassVar"):
        @value
        class Shared:
            a: "ClassVar[int]" = 1
    with pytest.raises(ValueError, match="mutable default"):
        @mutable
        class Listed:
            a: list = []
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        @value
        class Order:
            a: int = 0
            b: int


@pytest.mark.parametrize("args", [(), (1,), (1, 2)])
def test_every_missing_argument_is_named_as_python_names_them(args):
    ours = value(type("Three", (), {"__annotations__": {"a": "int", "b": "int", "c": "int"}}))
    theirs = dataclasses.dataclass(frozen=True)(type("Three", (), {"__annotations__": {"a": "int", "b": "int", "c": "int"}}))
    with pytest.raises(TypeError) as expected:
        theirs(*args)
    with pytest.raises(TypeError) as got:
        ours(*args)
    assert str(got.value).split("()")[1] == str(expected.value).split("()")[1]
