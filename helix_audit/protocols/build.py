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
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_REQUIRED = object()
_TEMPLATES: dict[type, tuple[dict[str, Any], frozenset[str]]] = {}
_new = object.__new__
_set = object.__setattr__


def _template(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: build() needs a plain frozen dataclass")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: build() does not run default factories")
        out[f.name] = _REQUIRED if f.default is dataclasses.MISSING else f.default
    return out, frozenset(k for k, v in out.items() if v is _REQUIRED)


def build(cls: type[T], fields: dict[str, Any]) -> T:
    """``cls(**fields)`` for a frozen dataclass, without its per-field ``__init__`` cost."""
    got = _TEMPLATES.get(cls)
    if got is None:
        got = _TEMPLATES[cls] = _template(cls)
    tpl, required = got
    values = tpl.copy()
    values.update(fields)
    if len(values) != len(tpl) or (len(fields) != len(tpl) and not fields.keys() >= required):
        return cls(**fields)  # unknown or missing field: let the real __init__ raise its error
    obj = _new(cls)
    _set(obj, "__dict__", values)  # the filled copy becomes the instance dict: no second copy
    return obj


def rebuilt(obj: T, changes: dict[str, Any]) -> T:
    """``build(type(obj), {**vars(obj), **changes})`` with one dict copy: ``obj``'s dict already
    holds every field in declaration order (as ``build``, the makers and ``__init__`` leave it),
    so a copy updated in place is the template-ordered dict ``build`` would make."""
    cls = type(obj)
    got = _TEMPLATES.get(cls)
    if got is None:
        got = _TEMPLATES[cls] = _template(cls)
    values = vars(obj).copy()
    size = len(values)
    values.update(changes)
    if len(values) != size or size != len(got[0]):
        return build(cls, {**vars(obj), **changes})  # not a plain instance: the checked path
    new = _new(cls)
    _set(new, "__dict__", values)
    return new


_HEAD = ("file", "frame", "ts", "src", "sport", "dst", "dport", "transport", "flow_id")  # streams.Meta


def observation_maker(cls: type[T]) -> Callable[..., T]:
    """A constructor ``make(meta, frames, type, **rest)`` for an observation class, ``build`` without
    the dicts: the head comes from a ``streams.Meta`` tuple, the instance dict is one literal.

    Generated code (as ``dataclasses`` does for ``__init__``): the fields of ``cls`` in declaration
    order, each parameter after ``type`` defaulting to the field's default.
    """
    tpl, required = _template(cls)
    own = [n for n in tpl if n not in _HEAD and n not in ("type", "frames")]
    missing = required - {*_HEAD, "type"}
    if missing or list(tpl)[:11] != ["type", "frame", "ts", "file", "src", "sport", "dst", "dport",
                                     "transport", "flow_id", "frames"]:  # fmt: skip
        raise TypeError(f"{cls.__name__}: not an observation class")
    defaults = {f"_d_{n}": tpl[n] for n in own}
    params = ", ".join(["meta", "frames", "type", *(f"{n}=_d_{n}" for n in own)])
    body = ", ".join(f"{n!r}: {n}" for n in tpl)
    src = (
        f"def make({params}):\n"
        f"    {', '.join(_HEAD)} = meta\n"
        f"    obj = _new(cls)\n"
        f"    _set(obj, '__dict__', {{{body}}})\n"
        f"    return obj\n"
    )
    scope: dict[str, Any] = {"_new": _new, "_set": _set, "cls": cls, **defaults}
    exec(src, scope)  # noqa: S102  source built above from field names only
    make: Callable[..., T] = scope["make"]
    return make
