"""@value: a frozen dataclass whose ==, hash and repr are shared code, not code made per class.

dataclasses writes each method of a class as source text and compiles it: six for a frozen
class, ~0.1 ms each, so ~0.6 ms a class and ~15 ms of every start-up for the ones an apply
imports. Three of the six need nothing of their own: `value` keeps dataclasses' __init__ and
its frozen guards, and gives the class the ==, hash and repr that dataclass(frozen=True) gives
it: == only between instances of the very same class, over the fields with compare=True in
order; the hash of those; repr as Class(field=value, ...) of the fields with repr=True.
tests/unit/test_frozen.py holds the two side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter


def value(cls):
    own = [name for name in ("__eq__", "__hash__", "__repr__") if name in cls.__dict__]
    if own:  # dataclass(frozen=True) would keep them or refuse: here they would be lost
        raise TypeError(f"@value {cls.__name__}: defines {', '.join(own)}")
    cls = dataclass(frozen=True, eq=False, repr=False)(cls)
    if any(f.hash is not None for f in fields(cls)):
        raise TypeError(f"@value {cls.__name__}: field(hash=...) is not supported")
    compared = [f.name for f in fields(cls) if f.compare]
    # (an attrgetter is no function: read through an instance, it is not bound to it)
    cls.__value_key__ = attrgetter(*compared) if compared else staticmethod(_nothing)
    cls.__value_shown__ = tuple(f.name for f in fields(cls) if f.repr)
    cls.__eq__, cls.__hash__, cls.__repr__ = _eq, _hash, _repr
    return cls


def _nothing(_) -> tuple:
    return ()


def _eq(self, other):
    if other.__class__ is self.__class__:
        key = self.__value_key__
        return key(self) == key(other)
    return NotImplemented


def _hash(self) -> int:
    return hash(self.__value_key__(self))


def _repr(self) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__value_shown__)
    return f"{self.__class__.__qualname__}({shown})"
