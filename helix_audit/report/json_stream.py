"""report.json written as a stream of ASCII bytes: the long lists (flows, observations) in chunks.

Byte for byte what ``json_report.dumps(json_report.to_dict(result))`` gives, without holding the
whole document: a 100k-flow report is ~150 MB of text, and building it as one dict of dicts and then
one string took seconds and gigabytes. Flow records are encoded column by column by
:mod:`.json_flows`; observations go through :func:`observation_record`, a direct version of
``Observation.to_record`` + ``jsonable`` (``dataclasses.asdict`` deep-copies every field and was
most of the cost).
Everything stays bytes from the encoder to the file: the report is ASCII-only, and a str of 100 MB
cost a decode and an encode more.

orjson (a dependency for this: ~10x the stdlib encoder, with native dataclass and numpy support)
encodes the records; a record whose orjson text is not pure ASCII (a non-ASCII or surrogate name),
or that orjson refuses (a non-string key, an int past 64 bits), takes the stdlib path, so the file
stays ASCII-only and the values are exactly the same (floats may be spelled differently, e.g.
``0.00001`` for ``1e-05``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from helix_audit.model import DnsAnswer, Observation
from helix_audit.report.common import jsonable
from helix_audit.report.rowtext import splice

# Each chunk's text and the arrays behind it are alive at once and, under ``heap.roomy_heap``, the
# heap keeps its high-water mark: on the benchmark 16384 flow rows and 4096 observations a chunk
# added 73 MiB to the peak RSS, these sizes 14 MiB, for the same CPU time (``json_flows.FLOW_CHUNK``).
CHUNK = 2048  # records per write
_SEP = ",\n  "
SEP = _SEP.encode("ascii")
Chunk = bytes | memoryview | np.ndarray  # ASCII text, written as it is
_PLAIN = (str, int, bool, type(None))


_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def compact(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))``."""
    return _ENCODER.encode(value)


# ------------------------------------------------------------------------------------ observations

_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """Field names of a model observation class; None when it writes its own record."""
    if cls not in _FIELDS:
        own = cls.to_record is not Observation.to_record  # type: ignore[attr-defined]
        fast = dataclasses.is_dataclass(cls) and not own
        _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)) if fast else None
    return _FIELDS[cls]


def _value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is tuple:
        return [_item(v) for v in value]
    return jsonable(value)


def _item(value: Any) -> Any:
    if type(value) is DnsAnswer:
        return {"name": _value(value.name), "rtype": _value(value.rtype), "ttl": _value(value.ttl),
                "data": _value(value.data)}  # fmt: skip
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return _value(value)


def observation_record(obs: Observation) -> dict[str, Any]:
    """``jsonable(obs.to_record())``, fast."""
    names = _field_names(type(obs))
    if names is None:
        return jsonable(obs.to_record())
    return {name: _value(getattr(obs, name)) for name in names}


def _default(value: Any) -> Any:
    """What json's encoder cannot encode itself, as :func:`jsonable` would make it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _item(value)
    return jsonable(value)


#: Encodes an observation's own ``__dict__`` directly: tuples become lists, str/float subclasses
#: (numpy's too) encode as their value, anything else goes through ``_default``; NaN raises and
#: takes the exact path instead.
_OBS_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_default)


_ORJSON = orjson.OPT_SERIALIZE_NUMPY


def _orjson_default(value: Any) -> Any:
    """What orjson cannot encode itself (sets, bytes, other objects), as :func:`jsonable` makes it."""
    out = jsonable(value)
    if out is value:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return out


def _ascii(value: Any) -> str | None:
    """orjson's compact text of ``value`` when it is pure ASCII, else None (take the stdlib path)."""
    try:
        data = orjson.dumps(value, default=_orjson_default, option=_ORJSON)
    except TypeError:
        return None
    return data.decode("ascii") if data.isascii() else None


def fast_compact(value: Any, exact: Any = None) -> str:
    """``compact(jsonable(value))`` (or ``compact(exact(value))``), by orjson when it can."""
    text = _ascii(value)
    if text is not None:
        return text
    return compact(exact(value) if exact is not None else jsonable(value))


def observation_text(obs: Observation) -> str:
    """``compact(observation_record(obs))``, without building the record for model observations."""
    names = _field_names(type(obs))
    state = getattr(obs, "__dict__", None)
    if names is not None and state is not None and len(state) == len(names):
        text = _ascii(state)
        if text is not None:
            return text
        try:
            return _OBS_ENCODER.encode(state)
        except ValueError:
            pass
    return compact(observation_record(obs))


# ---------------------------------------------------------------------------------------- batches


#: Between the records of a batch: a one-character string element that orjson writes raw, as the
#: two non-ASCII bytes C3 BF, in the text ``,"\xff",``. A batch whose text has no other non-ASCII
#: byte is ASCII records and exactly these markers; any other batch is encoded record by record.
_MARK = "\xff"
_MARK_WIDTH = 6  # ,"\xc3\xbf",


def batch_text(values: Sequence[Any]) -> bytes | memoryview | None:
    """``SEP.join(orjson text of each value)`` from ONE orjson call over the whole batch, when orjson
    encodes every value and all of it is ASCII; else None (encode them one by one).

    Not one call per record: each call's output buffer is a separate malloc, and with ~10^5 of them
    kept alive glibc's allocator spent ~5 µs per call on the audit's fragmented heap (0.67 s for
    the benchmark's 120k observations; 0.13 s as one call per 4096 records). The markers are found
    by their non-ASCII bytes (one vectorised pass) and cut out by :func:`.rowtext.splice`:
    ``bytes.replace`` of the old all-ASCII marker took longer than the encoding itself."""
    if not values:
        return b""
    mixed: list[Any] = [_MARK] * (2 * len(values) - 1)
    mixed[::2] = values
    try:
        data = orjson.dumps(mixed, default=_orjson_default, option=_ORJSON)
    except TypeError:
        return None
    raw = np.frombuffer(data, dtype=np.uint8)[1:-1]  # the records without "[" and "]"
    high = np.flatnonzero(raw >= 0x80)
    if high.size != 2 * (len(values) - 1):  # a record has non-ASCII text (or the marker itself)
        return None
    return splice(raw, high[0::2] - 2, _MARK_WIDTH, SEP)


_FAST_FIELDS: dict[type, int] = {}


def _state_count(cls: type) -> int:
    """How many entries a model observation's ``__dict__`` has when it holds exactly its fields
    (-1 for classes that write their own record)."""
    if cls not in _FAST_FIELDS:
        names = _field_names(cls)
        _FAST_FIELDS[cls] = -1 if names is None else len(names)
    return _FAST_FIELDS[cls]


def observations_text(chunk: Sequence[Observation]) -> bytes | memoryview:
    """``SEP.join(observation_text(o) for o in chunk)`` as bytes: the records' own ``__dict__`` in
    one orjson call when each is a plain model observation, else record by record."""
    try:
        states = [o.__dict__ for o in chunk]
    except AttributeError:
        states = None
    if states is not None:
        types = list(map(type, chunk))
        for cls in set(types).difference(_FAST_FIELDS):
            _state_count(cls)
        if list(map(len, states)) == list(map(_FAST_FIELDS.__getitem__, types)):
            text = batch_text(states)
            if text is not None:
                return text
    return _SEP.join(map(observation_text, chunk)).encode("ascii")


def record_chunks(
    records: Sequence[Any], fields: Callable[[Any], Any], text: Callable[[Any], str]
) -> Iterator[bytes | memoryview]:
    """``SEP``-joined records, ``CHUNK`` at a time: each chunk's ``fields`` dicts in one orjson call
    (:func:`batch_text`), or ``text`` per record when that fails."""
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        data = batch_text([fields(r) for r in chunk])
        yield data if data is not None else _SEP.join(map(text, chunk)).encode("ascii")


def observation_chunks(observations: Sequence[Observation]) -> Iterator[bytes | memoryview]:
    for start in range(0, len(observations), CHUNK):
        yield observations_text(observations[start : start + CHUNK])


def list_body(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
    """``[\\n  rec,\\n  rec\\n ]`` from chunks of ``SEP``-joined records (the caller knows there is
    at least one record)."""
    yield b"[\n  "
    first = True
    for chunk in chunks:
        if not len(chunk):
            continue
        if not first:
            yield SEP
        yield chunk
        first = False
    yield b"\n ]"
