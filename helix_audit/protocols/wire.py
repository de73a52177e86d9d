"""Compact pickling of a partition's extractor state: tuples instead of objects.

Pickle rebuilds a frozen dataclass or a slots dataclass through its generic ``__reduce_ex__``
(tens of microseconds each); a partition of a large capture returns ~10^5 observations and ~10^4
open directions, which made unpickling cost more than parsing. Here each object travels as
(class, field values) and is rebuilt with ``object.__new__`` plus one ``__dict__`` update (frozen
dataclasses) or ``object.__setattr__`` per slot (directions): the objects compare equal to the
originals. A direction's ``peer`` travels as the peer's key when the peer is in the table, else as a
stub carrying the one thing read from a finished peer: its ``tunnel`` flag.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from .reassembly import StreamStart
from .streams import Direction

_new = object.__new__
_set = object.__setattr__


def pack_objects(items: list[Any]) -> list[tuple[type, tuple[Any, ...]]]:
    """Frozen (non-slots) dataclasses as (class, values in ``__dict__`` order)."""
    return [(type(o), tuple(o.__dict__.values())) for o in items]


_NAMES: dict[type, tuple[str, ...]] = {}


def unpack_objects(packed: list[tuple[type, tuple[Any, ...]]]) -> list[Any]:
    out = []
    for cls, values in packed:
        names = _NAMES.get(cls)
        if names is None:
            names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
        obj: Any = _new(cls)
        obj.__dict__.update(zip(names, values, strict=True))
        out.append(obj)
    return out


_DIR_FIELDS = tuple(f.name for f in dataclasses.fields(Direction))
_STREAM_FIELDS = tuple(f.name for f in dataclasses.fields(StreamStart))
_PEER = _DIR_FIELDS.index("peer")
_STREAM = _DIR_FIELDS.index("stream")

DirKey = tuple[int, bool]


def pack_dirs(dirs: dict[DirKey, Direction]) -> list[tuple[DirKey, tuple[Any, ...]]]:
    where = {id(d): k for k, d in dirs.items()}
    out = []
    for key, d in dirs.items():
        values = [getattr(d, n) for n in _DIR_FIELDS]
        s = d.stream
        values[_STREAM] = tuple(getattr(s, n) for n in _STREAM_FIELDS)
        peer = d.peer
        if peer is not None:
            values[_PEER] = ("key", where[id(peer)]) if id(peer) in where else ("stub", bool(peer.tunnel))
        out.append((key, tuple(values)))
    return out


def unpack_dirs(packed: list[tuple[DirKey, tuple[Any, ...]]]) -> dict[DirKey, Direction]:
    dirs: dict[DirKey, Direction] = {}
    for key, values in packed:
        d = _new(Direction)
        for name, value in zip(_DIR_FIELDS, values, strict=True):
            _set(d, name, value)
        s = _new(StreamStart)
        for name, value in zip(_STREAM_FIELDS, values[_STREAM], strict=True):
            _set(s, name, value)
        _set(d, "stream", s)
        dirs[key] = d
    for d in dirs.values():
        peer: Any = d.peer
        if peer is not None:
            kind, what = peer  # packed above as (kind, key or tunnel flag)
            _set(d, "peer", dirs[what] if kind == "key" else SimpleNamespace(tunnel=what, peer=None))
    return dirs


__all__ = ["pack_dirs", "pack_objects", "unpack_dirs", "unpack_objects"]
