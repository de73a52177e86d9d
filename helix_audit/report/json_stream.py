"""report.json written as a stream: the long lists (flows, observations) record by record, in chunks.

Byte for byte what ``json_report.dumps(json_report.to_dict(result))`` gives, without holding the
whole document: a 100k-flow report is ~150 MB of text, and building it as one dict of dicts and then
one string took seconds and gigabytes. Flow records are encoded column by column (each distinct
text value once, numbers by ``repr`` as json's encoder does), then joined row by row; observations go
through :func:`observation_record`, a direct version of ``Observation.to_record`` + ``jsonable``
(``dataclasses.asdict`` deep-copies every field and was most of the cost).

orjson (a dependency for this: ~10x the stdlib encoder, with native dataclass and numpy support)
encodes the records; a record whose orjson text is not pure ASCII (a non-ASCII or surrogate name),
or that orjson refuses (a non-string key, an int past 64 bits), takes the stdlib path, so the file
stays ASCII-only and the values are exactly the same (floats may be spelled differently, e.g.
``0.00001`` for ``1e-05``). Flow columns go through orjson's numpy encoder a whole column at a time.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from helix_audit.model import DnsAnswer, Observation
from helix_audit.report.common import jsonable
from helix_audit.report.rowtext import join_rows, number_cells, text_cells

CHUNK = 4096  # records per write
FLOW_CHUNK = 16384  # flow rows encoded column-wise at a time
_SEP = ",\n  "
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


# ------------------------------------------------------------------------------------------- flows


def _column_texts(column: pd.Series) -> tuple[bytes | None, list[str], np.ndarray]:
    """(orjson text of a numeric column, or None; distinct value texts; per-row codes into them)."""
    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else ""
    if kind and kind in "iufb" and len(column):
        values = column.to_numpy()
        if kind == "f" and np.isinf(values).any():
            raise ValueError(f"Out of range float values are not JSON compliant: {column.name}")
        return orjson.dumps(values, option=_ORJSON)[1:-1], [], np.zeros(0, dtype=np.int64)
    values = column.astype(object).where(column.notna(), None)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = [fast_compact(u) for u in uniques.tolist()] + ["null"]
    return None, texts, np.where(codes < 0, len(texts) - 1, codes)


def _encoded_column(column: pd.Series) -> list[str]:
    """The JSON text of every value of a column (NaN/NA as null): numbers and booleans by orjson's
    numpy encoder over the whole column, other values once per distinct value."""
    numbers, texts, codes = _column_texts(column)
    if numbers is not None:
        return numbers.decode("ascii").split(",")
    return np.asarray(texts, dtype=object)[codes].tolist()


def _kernel_chunk(frame: pd.DataFrame, columns: Sequence[str]) -> str | None:
    """The chunk's records joined by ``_SEP``, assembled by :mod:`.rowtext`; None if not ASCII."""
    cells = []
    for c in columns:
        numbers, texts, codes = _column_texts(frame[c])
        got = number_cells(numbers, len(frame)) if numbers is not None else text_cells(texts, codes)
        if got is None:
            return None
        cells.append(got)
    keys = [("" if i == 0 else ",") + compact(c) + ":" for i, c in enumerate(columns)]
    return join_rows(keys, cells, _SEP)


def flow_lines(flows: pd.DataFrame, columns: Sequence[str]) -> Iterator[list[str]]:
    """Compact JSON text of the flow records (exactly ``columns``; NaN/NA as null), in chunks: a
    chunk is one string of records joined by ``_SEP`` (or a list of records on the plain path)."""
    template = "{" + ",".join(compact(c).replace("%", "%%") + ":%s" for c in columns) + "}"
    for start in range(0, len(flows), FLOW_CHUNK):
        frame = flows.iloc[start : start + FLOW_CHUNK].reindex(columns=list(columns))
        text = _kernel_chunk(frame, columns) if columns else None
        if text is not None:
            yield [text]
            continue
        cells = [_encoded_column(frame[c]) for c in columns]
        yield [template % row for row in zip(*cells, strict=True)]


def record_lines(records: Iterable[Any], encode: Any = compact) -> Iterator[list[str]]:
    chunk: list[str] = []
    for rec in records:
        chunk.append(encode(rec))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def list_body(chunks: Iterable[list[str]]) -> Iterator[str]:
    """``[\\n  rec,\\n  rec\\n ]`` from chunks of encoded records (the caller knows it is not empty)."""
    yield "[\n  "
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        yield ("" if first else _SEP) + _SEP.join(chunk)
        first = False
    yield "\n ]"
