"""Fast construction of the frozen observation dataclasses the parsers emit by the hundred thousand.

A frozen dataclass ``__init__`` sets every field through ``object.__setattr__`` (about 5 µs for an
observation's 15-20 fields). :func:`build` fills the instance ``__dict__`` in one step from a
per-class template holding every field in declaration order with its default: the object is equal,
hashes the same and serialises the same as ``cls(**fields)`` (tests/protocols/test_build.py checks
it). Only for classes whose fields all have plain defaults or are always given (no
``default_factory``, no ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_REQUIRED = object()
_TEMPLATES: dict[type, dict[str, Any]] = {}
_new = object.__new__


def _template(cls: type) -> dict[str, Any]:
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: build() needs a plain frozen dataclass")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: build() does not run default factories")
        out[f.name] = _REQUIRED if f.default is dataclasses.MISSING else f.default
    return out


def build(cls: type[T], fields: dict[str, Any]) -> T:
    """``cls(**fields)`` for a frozen dataclass, without its per-field ``__init__`` cost."""
    tpl = _TEMPLATES.get(cls)
    if tpl is None:
        tpl = _TEMPLATES[cls] = _template(cls)
    values = tpl.copy()
    values.update(fields)
    if len(values) != len(tpl) or _REQUIRED in values.values():
        return cls(**fields)  # unknown or missing field: let the real __init__ raise its error
    obj = _new(cls)
    obj.__dict__.update(values)
    return obj
