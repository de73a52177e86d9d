"""Compact pickling of a partition's extractor state: tuples instead of objects.

Pickle rebuilds a frozen dataclass or a slots dataclass through its generic ``__reduce_ex__`` (tens
of microseconds each); a partition of a large capture returns ~10^5 observations and ~10^4 open
directions, which made unpickling cost more than parsing. Here each object travels as (class, field
values) and is rebuilt by a small function compiled once per class: ``object.__new__`` and one
unpacking store of all fields (into the instance dict of a frozen dataclass, into the slots of a
direction). The objects compare equal to the originals. A direction's ``peer`` travels as the peer's
key when the peer is in the table, else as a stub carrying the one thing read from a finished peer:
its ``tunnel`` flag.
"""

from __future__ import annotations

import dataclasses
import operator
from types import SimpleNamespace
from typing import Any

from .reassembly import StreamStart
from .streams import Direction

_new = object.__new__
_set = object.__setattr__


def pack_objects(items: list[Any]) -> list[tuple[type, tuple[Any, ...]]]:
    """Frozen (non-slots) dataclasses as (class, values in ``__dict__`` order)."""
    return [(type(o), tuple(o.__dict__.values())) for o in items]


def _compiled(name: str, body: list[str], scope: dict[str, Any]) -> Any:  # noqa: ANN401
    """A function made from source lines, as :mod:`dataclasses` makes ``__init__``: one unpacking
    store per object instead of a ``setattr`` call or a ``zip`` per field (about half the time)."""
    code = f"def {name}(v):\n" + "".join(f"    {line}\n" for line in body)
    exec(code, scope)  # noqa: S102  names below are dataclass field names (identifiers)
    return scope[name]


def _dict_builder(cls: type) -> Any:  # noqa: ANN401
    """Rebuilds a (frozen, non-slots) ``cls`` from its field values: the values go into the fresh
    instance dict in field order, as ``__init__`` puts them (same key-sharing, same size)."""
    keys = ", ".join(f"d[{f.name!r}]" for f in dataclasses.fields(cls))
    return _compiled(
        "build", ["o = new(C)", "d = o.__dict__", f"{keys}, = v", "return o"], {"new": _new, "C": cls}
    )


_BUILDERS: dict[type, Any] = {}


def unpack_objects(packed: list[tuple[type, tuple[Any, ...]]]) -> list[Any]:
    out: list[Any] = []
    add, builders = out.append, _BUILDERS
    for cls, values in packed:
        build = builders.get(cls)
        if build is None:
            build = builders[cls] = _dict_builder(cls)
        add(build(values))
    return out


_DIR_FIELDS = tuple(f.name for f in dataclasses.fields(Direction))
_STREAM_FIELDS = tuple(f.name for f in dataclasses.fields(StreamStart))
_PEER = _DIR_FIELDS.index("peer")
_dir_values = operator.attrgetter(*_DIR_FIELDS)
_stream_values = operator.attrgetter(*_STREAM_FIELDS)
_STREAM = _DIR_FIELDS.index("stream")

DirKey = tuple[int, bool]


def pack_dirs(dirs: dict[DirKey, Direction]) -> list[tuple[DirKey, tuple[Any, ...]]]:
    where = {id(d): k for k, d in dirs.items()}
    out = []
    for key, d in dirs.items():
        values = list(_dir_values(d))  # one C call per object, not a getattr per field
        values[_STREAM] = _stream_values(d.stream)
        peer = d.peer
        if peer is not None:
            values[_PEER] = ("key", where[id(peer)]) if id(peer) in where else ("stub", bool(peer.tunnel))
        out.append((key, tuple(values)))
    return out


def _slots_builder(cls: type, names: tuple[str, ...], extra: list[str], scope: dict[str, Any]) -> Any:  # noqa: ANN401
    """Rebuilds a slots dataclass from its field values (then runs the ``extra`` lines)."""
    stores = ", ".join(f"o.{n}" for n in names)
    body = ["o = new(C)", f"{stores}, = v", *extra, "return o"]
    return _compiled("build", body, {"new": _new, "C": cls, **scope})


_build_stream = _slots_builder(StreamStart, _STREAM_FIELDS, [], {})
_build_dir = _slots_builder(
    Direction, _DIR_FIELDS, [f"o.stream = stream(v[{_STREAM}])"], {"stream": _build_stream}
)


def unpack_dirs(packed: list[tuple[DirKey, tuple[Any, ...]]]) -> dict[DirKey, Direction]:
    build = _build_dir
    dirs: dict[DirKey, Direction] = {key: build(values) for key, values in packed}
    for d in dirs.values():
        peer: Any = d.peer
        if peer is not None:
            kind, what = peer  # packed above as (kind, key or tunnel flag)
            _set(d, "peer", dirs[what] if kind == "key" else SimpleNamespace(tunnel=what, peer=None))
    return dirs


__all__ = ["pack_dirs", "pack_objects", "unpack_dirs", "unpack_objects"]
