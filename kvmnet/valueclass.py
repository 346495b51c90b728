"""@value and @mutable: classes of named fields as dataclasses makes them, made without it.

dataclasses writes each method of each class as source text and compiles it (~0.6 ms a class):
the 29 classes an apply imports cost every kvmnet command ~15-20 ms of start-up, a no-op
re-apply and QEMU's hooks included. Here all classes share one __init__, ==, hash and repr,
each told the class's fields; nothing is compiled, and dataclasses (with inspect) is not imported.

@value is dataclass(frozen=True): == only between instances of the very same class, over the
fields with compare=True in order; the hash of those; repr as Class(field=value, ...) of the
fields with repr=True; assigning or deleting an attribute raises FrozenInstanceError.
@mutable is dataclass(): the same == and repr, no hash, attributes set as usual.
__init__ takes the init fields by position or by name, with their default or default_factory,
and raises TypeError as dataclasses' does for a missing, unknown or repeated one; a field with
init=False gets its default. Fields are the class's annotations, in order (a base's first).
Not offered (refused, not ignored): ClassVar fields, __post_init__, __slots__, a hash= per field.
tests/unit/test_valueclass.py holds these classes and dataclasses' side by side.
"""

from __future__ import annotations

from operator import attrgetter


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class FrozenInstanceError(AttributeError):
    """An assignment to (or deletion of) an attribute of a @value."""


class Field:
    __slots__ = ("name", "default", "default_factory", "init", "repr", "compare")

    def __init__(self, default=MISSING, default_factory=MISSING, init=True, repr=True, compare=True):
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default, self.default_factory = default, default_factory
        self.init, self.repr, self.compare = init, repr, compare


def field(*, default=MISSING, default_factory=MISSING, init: bool = True, repr: bool = True,
          compare: bool = True) -> Field:
    return Field(default, default_factory, init, repr, compare)


def value(cls):
    """A frozen value class (dataclass(frozen=True))."""
    _build(cls, frozen=True)
    cls.__hash__ = _hash
    cls.__setattr__, cls.__delattr__ = _refuse_set, _refuse_delete
    return cls


def mutable(cls):
    """A class of fields that may change (dataclass())."""
    _build(cls, frozen=False)
    cls.__hash__ = None  # (as dataclasses: == by value, so no hash)
    return cls


def fields(cls_or_instance) -> tuple[Field, ...]:
    try:
        return cls_or_instance.__value_fields__
    except AttributeError:
        raise TypeError(f"{cls_or_instance!r} is not a @value or @mutable class or instance") from None


def is_value_class(kind) -> bool:
    return isinstance(kind, type) and "__value_fields__" in kind.__dict__


def replace(obj, /, **changes):
    """dataclasses.replace: a new instance, the fields not in `changes` as in `obj`."""
    for f in fields(obj):
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name} is declared with init=False, it cannot be specified with replace()")
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


def asdict(obj) -> dict:
    """dataclasses.asdict, recursing into fields, lists, tuples and dicts; any other value is
    shared with `obj`, not deep-copied (the model's values are immutable)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _plain(v):
    if hasattr(type(v), "__value_fields__"):
        return asdict(v)
    if type(v) in (list, tuple):
        return type(v)(_plain(x) for x in v)
    if type(v) is dict:
        return {_plain(k): _plain(x) for k, x in v.items()}
    return v


def _build(cls, frozen: bool) -> None:
    own = [name for name in ("__eq__", "__hash__", "__repr__", "__post_init__", "__slots__") if name in cls.__dict__]
    if own:  # dataclasses would keep or call them, or refuse: here they would be lost
        raise TypeError(f"@{'value' if frozen else 'mutable'} {cls.__name__}: defines {', '.join(own)}")
    found = {f.name: f for base in reversed(cls.__mro__[1:]) for f in base.__dict__.get("__value_fields__", ())}
    for name, kind in cls.__dict__.get("__annotations__", {}).items():
        found[name] = _field(cls, name, kind)
    cls.__value_fields__ = all_fields = tuple(found.values())
    _check_order(cls, all_fields)
    compared = [f.name for f in all_fields if f.compare]
    # (an attrgetter is no function: read through an instance, it is not bound to it)
    cls.__value_key__ = attrgetter(*compared) if compared else staticmethod(_nothing)
    cls.__value_shown__ = tuple(f.name for f in all_fields if f.repr)
    cls.__init__ = _initializer(cls, all_fields)
    cls.__eq__, cls.__repr__ = _eq, _repr


def _field(cls, name: str, kind) -> Field:
    if (kind if isinstance(kind, str) else repr(kind)).strip("'\"").replace("typing.", "").startswith("ClassVar"):
        raise TypeError(f"{cls.__name__}.{name}: ClassVar fields are not supported")
    spec = cls.__dict__.get(name, MISSING)
    f = spec if isinstance(spec, Field) else Field(default=spec)
    f.name = name
    if f.default is not MISSING and f.default.__class__.__hash__ is None:
        raise ValueError(f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory")
    if f.default is not MISSING:
        setattr(cls, name, f.default)  # the class attribute is the default, as dataclasses leaves it
    elif isinstance(spec, Field):
        delattr(cls, name)
    return f


def _check_order(cls, all_fields: tuple[Field, ...]) -> None:
    defaulted = False
    for f in all_fields:
        if not f.init:
            continue
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if defaulted and not has_default:
            raise TypeError(f"{cls.__name__}: non-default argument {f.name!r} follows default argument")
        defaulted = defaulted or has_default


def _initializer(cls, all_fields: tuple[Field, ...]):
    names = tuple(f.name for f in all_fields if f.init)
    count, known, title = len(names), frozenset(names), f"{cls.__qualname__}.__init__()"
    required = sum(f.default is MISSING and f.default_factory is MISSING for f in all_fields if f.init)
    takes = f"{count + 1}" if required == count else f"from {required + 1} to {count + 1}"  # (self too)
    every = count == len(all_fields)  # (all positional: the values are the whole __dict__, in order)
    # an init=False field with a plain default is not set: the class attribute answers, as in dataclasses
    fill = tuple((f.name, f.init, f.default, f.default_factory) for f in all_fields
                 if f.init or f.default_factory is not MISSING)

    def __init__(self, *args, **kwargs):
        if len(args) > count:
            raise TypeError(f"{title} takes {takes} positional arguments but {len(args) + 1} were given")
        given = dict(zip(names, args))
        if not kwargs and every and len(args) == count:
            self.__dict__.update(given)
            return
        for key, v in kwargs.items():
            if key in given:
                raise TypeError(f"{title} got multiple values for argument {key!r}")
            if key not in known:
                raise TypeError(f"{title} got an unexpected keyword argument {key!r}")
            given[key] = v
        out, missing = {}, []
        for name, init, default, factory in fill:
            if init and name in given:
                out[name] = given[name]
            elif default is not MISSING:
                out[name] = default
            elif factory is not MISSING:
                out[name] = factory()
            elif init:
                missing.append(repr(name))
        if missing:
            raise TypeError(f"{title} {_missing_words(missing)}")
        self.__dict__.update(out)
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _missing_words(names: list[str]) -> str:
    """Python's words for missing arguments: 'a', 'a' and 'b', 'a', 'b', and 'c'."""
    listed = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else \
        ", ".join(names[:-1]) + ", and " + names[-1]
    return f"missing {len(names)} required positional argument{'s' if len(names) > 1 else ''}: {listed}"


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


def _refuse_set(self, name, _value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delete(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")
