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
#: Pools of field values, each mapping a value to the one copy observations share (see :func:`pool`).
_POOLS: list[dict[Any, Any]] = []
#: Entries a pool may hold before :func:`trim_pools` empties it.
POOL_LIMIT = 1 << 16
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


def pool() -> dict[Any, Any]:
    """A new pool of shared values: ``p.setdefault(v, v)`` is ``v``, or an equal copy seen before.

    10^5 observations repeat a few thousand distinct names, versions, user agents ...: each parse
    makes a fresh string (or tuple, or answer object), and keeping one copy of each instead is ~25
    MiB less on the benchmark. Only equal *values* are shared, after parsing (never a result keyed
    on payload bytes), so nothing but object identity changes, and no one mutates them (frozen).
    A pool's keys must be of types whose equal values are interchangeable (str, None, tuples of
    str; never ints beside floats or bools: ``1 == 1.0 == True``).
    """
    p: dict[Any, Any] = {}
    _POOLS.append(p)
    return p


def trim_pools() -> None:
    """Empty the pools that grew past ``POOL_LIMIT`` (once a batch: distinct values of real traffic
    (paths, names) keep coming; the values already shared stay shared)."""
    for p in _POOLS:
        if len(p) > POOL_LIMIT:
            p.clear()


def clear_pools() -> None:
    """Empty every pool (the audit's observations are complete: nothing more to share with, and the
    values must not outlive it or reach the next audit in this process)."""
    for p in _POOLS:
        p.clear()


#: Strings, None, tuples of strings of the parsers' observations (``observation_maker``'s ``shared``).
SHARED = pool()


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


def amended(obj: T, changes: dict[str, Any]) -> T:
    """``rebuilt(obj, changes)`` made in place, for an object nobody else holds yet (the pairing's
    requests at the end of the scan, as ``pipeline`` sets final flow ids): updating keys its dict
    already holds keeps their order, so the dict is the one ``rebuilt`` would copy, without
    copying the other fields of every paired request. Anything else takes ``rebuilt``."""
    cls = type(obj)
    got = _TEMPLATES.get(cls)
    if got is None:
        got = _TEMPLATES[cls] = _template(cls)
    values = vars(obj)
    if len(values) != len(got[0]) or not changes.keys() <= values.keys():
        return rebuilt(obj, changes)
    values.update(changes)
    return obj


_HEAD = ("file", "frame", "ts", "src", "sport", "dst", "dport", "transport", "flow_id")  # streams.Meta


def _prototype(cls: type, tpl: dict[str, Any]) -> dict[str, Any]:
    """The instance dict of a ``cls`` made by its ``__init__`` (required fields as placeholders).

    On CPython 3.11 such a dict shares its keys with the class, and so do its copies: ~200 bytes an
    observation instead of ~460 for a dict literal, and every later pass over 10^5 observations
    (sorting, classification, the report) reads fewer cache lines. Same content and key order
    either way, so equal and serialised the same."""
    return vars(cls(**{n: 0 if v is _REQUIRED else v for n, v in tpl.items()}))


def observation_maker(cls: type[T], shared: tuple[str, ...] = ()) -> Callable[..., T]:
    """A constructor ``make(meta, frames, type, **rest)`` for an observation class, ``build`` without
    the dicts: the head comes from a ``streams.Meta`` tuple, the instance dict is a copy of
    :func:`_prototype` with every field stored in declaration order, the fields named in ``shared``
    (str, None or tuples of str) through the ``SHARED`` pool.

    Generated code (as ``dataclasses`` does for ``__init__``): the fields of ``cls`` in declaration
    order, each parameter after ``type`` defaulting to the field's default.
    """
    tpl, required = _template(cls)
    own = [n for n in tpl if n not in _HEAD and n not in ("type", "frames")]
    missing = required - {*_HEAD, "type"}
    if missing or list(tpl)[:11] != ["type", "frame", "ts", "file", "src", "sport", "dst", "dport",
                                     "transport", "flow_id", "frames"]:  # fmt: skip
        raise TypeError(f"{cls.__name__}: not an observation class")
    if not set(shared) <= set(own):
        raise TypeError(f"{cls.__name__}: cannot share {sorted(set(shared) - set(own))}")
    defaults = {f"_d_{n}": tpl[n] for n in own}
    params = ", ".join(["meta", "frames", "type", *(f"{n}=_d_{n}" for n in own)])
    body = "".join(f"    d[{n!r}] = {f'_share({n}, {n})' if n in shared else n}\n" for n in tpl)
    src = (
        f"def make({params}):\n"
        f"    {', '.join(_HEAD)} = meta\n"
        f"    d = _copy()\n"
        f"{body}"
        f"    obj = _new(cls)\n"
        f"    _set(obj, '__dict__', d)\n"
        f"    return obj\n"
    )
    scope: dict[str, Any] = {"_new": _new, "_set": _set, "cls": cls, "_copy": _prototype(cls, tpl).copy,
                             "_share": SHARED.setdefault, **defaults}  # fmt: skip
    exec(src, scope)  # noqa: S102  source built above from field names only
    make: Callable[..., T] = scope["make"]
    return make
