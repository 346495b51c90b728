"""A validated Topology as plain values (lists, str, int, bool, None: what JSON or marshal
carry) and back, for engine/topocache.py. Pure.

Closed: the shape comes from model.py's own field types (value classes, str, int, bool, None,
tuples, the ipaddress types), nothing in the data names a class or a function, and decoding
checks every value against its field's type; anything else is Unfit. A value class is the list of
its field values in order (a list or a tuple is accepted wherever one is expected); IPv4/IPv6
addresses of a field typed as one family are integers.
Topology.source is not kept: the cache hands back the file's own text.
"""

from __future__ import annotations

import operator
import sys
import types
from ipaddress import (IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network,
                       ip_address)

from .. import model
from ..valueclass import fields, is_value_class, replace
from . import values


class Unfit(ValueError):
    """Data that is not a Topology of this kvmnet's model."""


def encode(topo: model.Topology) -> list:
    return _codec(model.Topology)[0](topo)


def decode(data, source: str) -> model.Topology:
    try:
        topo = _codec(model.Topology)[1](data)
    finally:
        for made in _interned.values():
            made.clear()
    return replace(topo, source=source)


def _same(v):
    return v


# a tuple field or a value class comes back as a list from JSON, and as the tuple encode() left it
# from marshal (engine/topocache.py)
_SEQUENCES = (list, tuple)


_SAME = _same


# the decoders of str, int and bool fields (and of those types or None), by the exact types they
# admit: containers check such values inline instead of calling them (the big topology's cache:
# ~100,000 values)
_PLAIN: dict = {}


def _check(kind):
    def dec(v):
        if type(v) is not kind:  # exact: True is not an int here
            raise Unfit(f"{v!r} is not {kind.__name__}")
        return v
    _PLAIN[dec] = (kind,)
    return _same, dec


def _unfit(v, kinds: tuple) -> Unfit:
    return Unfit(f"{v!r} is not {' or '.join(k.__name__ for k in kinds)}")


def _address(kind, bits: int):
    made = _interned.setdefault(kind, {})  # ten forwards to a guest: one address object, not ten

    def dec(v):
        if type(v) is not int:
            raise Unfit(f"{v!r} is not an IPv{4 if bits == 32 else 6} address")
        address = made.get(v)
        if address is None:
            if not 0 <= v < 1 << bits:
                raise Unfit(f"{v!r} is not an IPv{4 if bits == 32 else 6} address")
            address = made[v] = kind(v)
        return address
    return int, dec


# address type -> {its integer: the address}, shared by the values of one decode() (immutable)
_interned: dict[type, dict] = {}


def _text_form(kind):
    def dec(v):
        if type(v) is not str:
            raise Unfit(f"{v!r} is not a string")
        try:
            return kind(v)
        except ValueError as exc:
            raise Unfit(str(exc)) from None
    return str, dec


def _any_address(allowed: tuple):
    def dec(v):
        value = _text_form(ip_address)[1](v)
        if not isinstance(value, allowed):
            raise Unfit(f"{v!r} is not {allowed}")
        return value
    return str, dec


_LEAVES = {str: _check(str), int: _check(int), bool: _check(bool), IPv4Address: _address(IPv4Address, 32),
           IPv6Address: _address(IPv6Address, 128), IPv4Network: _text_form(IPv4Network),
           IPv6Network: _text_form(IPv6Network), IPv4Interface: _text_form(IPv4Interface),
           IPv6Interface: _text_form(IPv6Interface)}
_codecs: dict = {}


def _codec(kind):
    """(encode, decode) for a field type of model.py."""
    if kind in _codecs:
        return _codecs[kind]
    if kind in _LEAVES:
        made = _LEAVES[kind]
    elif is_value_class(kind):
        made = _value_class(kind)
    elif isinstance(kind, types.UnionType):  # X | None
        made = _union(kind.__args__)
    elif isinstance(kind, types.GenericAlias) and kind.__origin__ is tuple:
        made = _tuple(kind.__args__)
    else:
        raise TypeError(f"topojson: no codec for {kind!r}")  # a model change this module must learn
    _codecs[kind] = made
    return made


def _union(args: tuple):
    optional = type(None) in args
    rest = tuple(a for a in args if a is not type(None))
    if len(rest) == 1:
        enc, dec = _codec(rest[0])
    elif set(rest) == {IPv4Address, IPv6Address}:
        enc, dec = _any_address(rest)
    else:
        raise TypeError(f"topojson: no codec for the union {args!r}")
    if not optional:
        return enc, dec

    def dec_optional(v):
        return None if v is None else dec(v)
    if dec in _PLAIN:
        _PLAIN[dec_optional] = (*_PLAIN[dec], type(None))
    if enc is _same:
        return _same, dec_optional
    enc_optional = lambda v: None if v is None else enc(v)  # noqa: E731
    _UNLESS_NONE[enc_optional] = enc
    return enc_optional, dec_optional


# encoder of `X | None` -> X's: a value class calls that one itself, for its fields that are not
# None (10,000 forwards have three such fields, mostly None: a call each saved)
_UNLESS_NONE: dict = {}


def _tuple(args: tuple):
    if len(args) == 2 and args[1] is Ellipsis:
        enc, dec = _codec(args[0])

        def dec_all(v):
            if type(v) not in _SEQUENCES:
                raise Unfit(f"{v!r} is not a list")
            return tuple([dec(x) for x in v])
        return (_same if enc is _same else lambda v: [enc(x) for x in v]), dec_all  # json writes tuples as lists
    codecs = [_codec(a) for a in args]
    plain = [(i, _PLAIN[d]) for i, (_, d) in enumerate(codecs) if d in _PLAIN]

    count, all_plain = len(codecs), len(plain) == len(codecs)

    def dec_fixed(v):
        if type(v) not in _SEQUENCES or len(v) != count:
            raise Unfit(f"{v!r} is not a list of {count}")
        if all_plain:  # (int, int) and the like: checked, not converted
            for i, kinds in plain:
                if type(v[i]) not in kinds:
                    raise _unfit(v[i], kinds)
            return tuple(v)
        return tuple([d(x) for (_, d), x in zip(codecs, v)])
    if all(e is _same for e, _ in codecs):
        return _same, dec_fixed
    return (lambda v: [e(x) for (e, _), x in zip(codecs, v)]), dec_fixed


def _hints(cls) -> dict:
    """The field types of a value class, its annotations' text evaluated where each was written
    (as typing.get_type_hints does; that module's import and its ForwardRefs are ~8 ms of a
    small change's apply, and model.py writes its annotations in the builtin forms alone)."""
    hints = {}
    for klass in reversed(cls.__mro__):
        scope = vars(sys.modules[klass.__module__])
        for name, text in klass.__dict__.get("__annotations__", {}).items():
            hints[name] = eval(text, scope) if isinstance(text, str) else text  # noqa: S307 (model.py's own text)
    return hints


def _value_class(cls):
    hints = _hints(cls)
    names = [f.name for f in fields(cls) if f.name != "source"]
    codecs = [_codec(hints[n]) for n in names]

    fetch = operator.attrgetter(*names) if len(names) > 1 else (lambda obj: (getattr(obj, names[0]),))
    # str, int, bool: as they are; None: as it is, for every field (an optional one's encoder
    # is called on what is not None, a plain one's is never given None by a validated value)
    converted = [(i, _UNLESS_NONE.get(e, e)) for i, (e, _) in enumerate(codecs) if e is not _SAME]

    def enc(obj):
        values = list(fetch(obj))
        for i, e in converted:
            v = values[i]
            if v is not None:
                values[i] = e(v)
        return values

    plain = [(i, _PLAIN[d]) for i, (_, d) in enumerate(codecs) if d in _PLAIN]
    called = [(i, d) for i, (_, d) in enumerate(codecs) if d not in _PLAIN]
    make = values.maker(cls, names)  # (~half the time of the constructor: values.py)
    count = len(codecs)

    def dec(v):
        if type(v) not in _SEQUENCES or len(v) != count:
            raise Unfit(f"not a {cls.__name__}")
        for i, kinds in plain:
            if type(v[i]) not in kinds:
                raise _unfit(v[i], kinds)
        fields = list(v)
        for i, d in called:
            fields[i] = d(fields[i])
        return make(fields)
    return enc, dec
