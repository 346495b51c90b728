"""Making and copying the model's frozen values quickly, for the loader's and the cache's bulk
(10,000 forwards, 1000 guests): a value's __init__ (valueclass.py) matches its arguments to its
fields, and replace() goes through __init__ again after reading every field. Filling a new
instance's __dict__ at once, as copy and pickle do, gives the same value in about half the time
(a replace in a fifth).

Only for a class whose every field is an init field (__init__ then does nothing else: valueclass
refuses __post_init__ and __slots__). Any other class gets the plain constructor and replace().
"""

from __future__ import annotations

from ..valueclass import fields as fields_of, replace

_FIELDS: dict[type, tuple[str, ...] | None] = {}  # class -> its field names; None: not plain


def _plain_fields(cls) -> tuple[str, ...] | None:
    if cls not in _FIELDS:
        params = fields_of(cls)
        _FIELDS[cls] = tuple(f.name for f in params) if all(f.init for f in params) else None
    return _FIELDS[cls]


def maker(cls, names: tuple[str, ...] | list[str] | None = None):
    """values -> an instance of `cls`, the values in field order (`names`: those the caller
    gives, which must be every field). The plain constructor when the class is not plain."""
    fields = _plain_fields(cls)
    if fields is None or (names is not None and tuple(names) != fields):
        return lambda values: cls(*values)
    new = object.__new__

    def make(values):
        obj = new(cls)
        obj.__dict__.update(zip(fields, values))
        return obj
    return make


def evolve(value, **changes):
    """replace(value, **changes) for the model's values. Only the fields are copied:
    a cached_property's value, kept in the same __dict__, may depend on what changes."""
    cls = type(value)
    fields = _plain_fields(cls)
    if fields is None or not changes.keys() <= set(fields):
        return replace(value, **changes)  # (its TypeError for a name that is no field)
    old = value.__dict__
    obj = object.__new__(cls)
    if len(old) == len(fields):  # the fields alone: copied at once
        new = old.copy()
        new.update(changes)
    else:
        new = {name: changes[name] if name in changes else old[name] for name in fields}
    object.__setattr__(obj, "__dict__", new)
    return obj
