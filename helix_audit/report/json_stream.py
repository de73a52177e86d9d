"""report.json written as a stream: the long lists (flows, observations) record by record, in chunks.

Byte for byte what ``json_report.dumps(json_report.to_dict(result))`` gives, without holding the
whole document: a 100k-flow report is ~150 MB of text, and building it as one dict of dicts and then
one string took seconds and gigabytes. Flow records are encoded column by column (each distinct
text value once, numbers by ``repr`` as json's encoder does), then joined row by row; observations go
through :func:`observation_record`, a direct version of ``Observation.to_record`` + ``jsonable``
(``dataclasses.asdict`` deep-copies every field and was most of the cost).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from helix_audit.model import DnsAnswer, Observation
from helix_audit.report.common import jsonable

CHUNK = 4096  # records per write
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


def observation_text(obs: Observation) -> str:
    """``compact(observation_record(obs))``, without building the record for model observations."""
    names = _field_names(type(obs))
    state = getattr(obs, "__dict__", None)
    if names is not None and state is not None and len(state) == len(names):
        try:
            return _OBS_ENCODER.encode(state)
        except ValueError:
            pass
    return compact(observation_record(obs))


# ------------------------------------------------------------------------------------------- flows


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "null"
    if math.isinf(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


def _encoded_column(key: str, column: pd.Series) -> list[str]:
    """``"key":value`` for every row, the value as json's compact encoder writes it."""
    prefix = compact(key) + ":"
    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else ""
    if kind in "iu" and kind:
        return [prefix + text for text in map(str, column.to_numpy().tolist())]
    if kind == "f":
        return [prefix + _float_text(v) for v in column.to_numpy().tolist()]
    if kind == "b":
        return [prefix + ("true" if v else "false") for v in column.to_numpy().tolist()]
    values = column.astype(object).where(column.notna(), None)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = [prefix + compact(u) for u in uniques.tolist()] + [prefix + "null"]
    return np.asarray(texts, dtype=object)[codes].tolist()


def flow_lines(flows: pd.DataFrame, columns: Sequence[str]) -> Iterator[list[str]]:
    """Compact JSON text of each flow record (exactly ``columns``; NaN/NA as null), in chunks."""
    for start in range(0, len(flows), CHUNK):
        frame = flows.iloc[start : start + CHUNK].reindex(columns=list(columns))
        cells = [_encoded_column(c, frame[c]) for c in columns]
        yield ["{" + ",".join(row) + "}" for row in zip(*cells, strict=True)]


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
