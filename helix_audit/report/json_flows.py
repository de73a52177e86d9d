"""The flow records of report.json, encoded column by column and joined row by row.

Apart from :mod:`.json_stream` (observations and the list framing) because flows are a table, not
objects: each column of a chunk of ``FLOW_CHUNK`` rows becomes cells (each distinct text object
encoded once, numbers as json's encoder writes them, whole numeric columns through orjson's numpy
encoder) and :mod:`.rowtext` joins them into records. A chunk with a non-ASCII text takes the plain
path, value by value, to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from helix_audit.arrays import addresses, stored_objects
from helix_audit.flows.blob import TextBlobArray
from helix_audit.report.json_stream import _ORJSON, _SEP, compact, fast_compact
from helix_audit.report.rowkernel import TEXT
from helix_audit.report.rowtext import (
    Cells,
    Reader,
    category_parts,
    constant_cells,
    identities,
    int_cells,
    join_rows,
    null_cells,
    number_cells,
    quoted_cells,
    read_cells,
    text_cells,
)

_NL = 10
FLOW_CHUNK = 4096  # flow rows encoded column-wise at a time (sized with ``json_stream.CHUNK``)


def _texts(column: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """(per-row codes, distinct values) of a non-numeric column; NaN/NA have code -1."""
    values = column.to_numpy(dtype=object)  # no copy for object and str columns; NA as NaN/None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, list(uniques)


def _object_cells(values: np.ndarray, ids: np.ndarray | None = None) -> Cells | None:
    """Cells of a chunk of an object column (``ids``: its addresses, if known); None if a text is
    not ASCII. Each distinct object is encoded once: found by identity, not by value
    (pd.factorize hashed every string, ~40% of the flow records' time; a table's column shares
    its few string objects)."""
    codes, first = identities(values, ids)
    uniques = values if len(first) == len(values) else values[first]  # all distinct: first = 0..n-1
    cells = quoted_cells(uniques.tolist(), codes)  # refuses None and NaN: no isna on the way
    if cells is not None:
        return cells
    null = pd.isna(uniques)
    if null.any():
        rank = np.cumsum(~null) - 1
        uniques = uniques[~null]
        rank[null] = len(uniques)  # the "null" after the values' texts
        codes = rank[codes]
    plain = uniques.tolist()
    cells = quoted_cells(plain, codes)
    if cells is not None:
        return cells
    return text_cells([fast_compact(u) for u in plain] + ["null"], codes)


def _number_cells(values: np.ndarray, name: object) -> Cells:
    """Cells of a float, boolean or wide integer chunk: orjson's text of the array (or of its one
    value, when every row has the same: orjson spent ~20 ns a float)."""
    if values.dtype.kind == "f" and np.isinf(values).any():
        raise ValueError(f"Out of range float values are not JSON compliant: {name}")
    values = np.ascontiguousarray(values)
    if len(values) and _same(values):
        return constant_cells(orjson.dumps(values[:1], option=_ORJSON)[1:-1], len(values))
    return number_cells(orjson.dumps(values, option=_ORJSON)[1:-1], len(values))


def _same(values: np.ndarray) -> bool:
    """Whether every value is written as the first is (floats: the same sign, -0.0 is not 0.0;
    NaN, written null, only with NaN)."""
    if values.dtype.kind != "f":
        return not (values != values[0]).any()
    if values[0] != values[0]:
        return bool(np.isnan(values).all())
    return not (values != values[0]).any() and not (np.signbit(values) != np.signbit(values[0])).any()


def _nullable_ints(part: Any) -> Cells:
    return int_cells(part.to_numpy(dtype=np.int64, na_value=0), part.isna())


def _reader(flows: pd.DataFrame, name: str) -> Reader:
    """The cells of rows ``[start, stop)`` of one column (see :mod:`.rowtext`): the column and its
    arrays are looked up once per table, not once per chunk (a frame slice per chunk was ~15% of
    the time), and sliced per chunk without copies."""
    if name not in flows.columns:
        return lambda start, stop: null_cells(stop - start)
    column = flows[name]
    dtype = column.dtype
    kind = getattr(dtype, "kind", "")
    wide = kind == "u" and dtype.itemsize >= 8  # past int64: orjson writes it
    if isinstance(dtype, np.dtype) and kind in "iufb":
        values = column.to_numpy()
        if kind in "iu" and not wide:
            if dtype.itemsize < 8:  # int32 ports and counters: the kernel takes int64
                return lambda start, stop: int_cells(values[start:stop].astype(np.int64))
            return lambda start, stop: int_cells(values[start:stop])
        return lambda start, stop: _number_cells(values[start:stop], column.name)
    if isinstance(dtype, pd.CategoricalDtype):
        cats, codes = category_parts(column)
        few = _category_reader(cats, codes) if len(cats) <= _FEW_CATEGORIES else None
        return few or (lambda start, stop: _object_cells(cats[codes[start:stop]]))
    array = column.array
    if isinstance(array, TextBlobArray):  # key_frames: cells straight from its buffer
        return lambda start, stop: _blob_cells(array[start:stop])
    if kind in "iu" and not wide and isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return lambda start, stop: _nullable_ints(array[start:stop])
    whole = _object_view(array)
    if whole is not None:
        ids = addresses(whole)  # a view: valid while ``whole``, held by the closure, lives
        return lambda start, stop: _object_cells(whole[start:stop], ids[start:stop])
    return lambda start, stop: _object_cells(array[start:stop].to_numpy(dtype=object))


#: A Categorical of up to this many categories has them quoted once for the whole table.
_FEW_CATEGORIES = 1 << 10


def _category_reader(cats: np.ndarray, codes: np.ndarray) -> Reader | None:
    """Cells of a Categorical column's chunks from its categories quoted once (``cats``: the
    categories then None), each chunk's texts the categories its codes use (one: the row-constant
    column the kernel folds): no object gather and no identity hashing per chunk. None when a
    category is not a plain string (the chunks go by :func:`_object_cells`)."""
    whole = quoted_cells(cats[:-1].tolist(), np.zeros(0, dtype=np.int64))
    if whole is None:
        return None
    assert whole.b is not None
    starts, ends = np.roll(whole.a, 1), np.roll(whole.b, 1)  # entry 0: the null (code -1)
    n = len(cats)

    def read(start: int, stop: int) -> Cells:
        at = codes[start:stop].astype(np.int64) + 1
        used = np.flatnonzero(np.bincount(at, minlength=n))
        if used.shape[0] == 1:  # one text in the chunk: no renumbering
            return Cells(TEXT, whole.blob, starts[used], ends[used], np.zeros(at.shape[0], dtype=np.int64))
        rank = np.zeros(n, dtype=np.int64)
        rank[used] = np.arange(used.shape[0])
        return Cells(TEXT, whole.blob, starts[used], ends[used], rank[at])

    return read


def _blob_cells(part: TextBlobArray) -> Cells | None:
    """Cells of a chunk of a :class:`.TextBlobArray` quoted in its buffer (each row's newline made
    the closing and the next opening quote) when every text is plain (printable ASCII but ``"``
    and ``\\``: key frames are digits and commas), else from its strs."""
    got = part.rows()
    if got is None or len(part) == 0:
        return _object_cells(part.to_numpy())
    data, offs = got
    ends = data == _NL
    odd = ((data - np.uint8(0x20)) >= 0x5F) | (data == 0x5C) | (data == 0x22)
    if np.count_nonzero(ends) != len(part) or (odd & ~ends).any():  # a newline or escape in a text
        return _object_cells(part.to_numpy())
    quoted = b'"' + data.tobytes().replace(b"\n", b'""')[:-1]
    i = np.arange(len(part), dtype=np.int64)
    return Cells(TEXT, quoted, offs[:-1] + i, offs[1:] + i + 1)


def _object_view(array: Any) -> np.ndarray | None:
    """An object or python-string column's values as the object array it stores (no copy), else
    None (other arrays make objects when asked: they are converted a chunk at a time)."""
    values = stored_objects(array)
    return values if values is not None and values.flags.c_contiguous else None


def _joined(readers: Sequence[Reader], keys: Sequence[str], start: int, stop: int) -> np.ndarray | None:
    """Rows ``[start, stop)`` joined by ``SEP`` (ASCII bytes), assembled by :mod:`.rowtext`; None
    if a text is not ASCII."""
    cells = read_cells(readers, start, stop)
    return None if cells is None else join_rows(keys, cells, _SEP)


def _keys(columns: Sequence[str]) -> list[str]:
    return [("" if i == 0 else ",") + compact(c) + ":" for i, c in enumerate(columns)]


def _encoded_column(column: pd.Series) -> list[str]:
    """The JSON text of every value of a column (NaN/NA as null), one by one: the plain path."""
    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else ""
    if kind and kind in "iufb" and len(column):
        values = column.to_numpy()
        if kind == "f" and np.isinf(values).any():
            raise ValueError(f"Out of range float values are not JSON compliant: {column.name}")
        return orjson.dumps(values, option=_ORJSON)[1:-1].decode("ascii").split(",")
    codes, uniques = _texts(column)
    texts = [fast_compact(u) for u in uniques] + ["null"]
    return np.asarray(texts, dtype=object)[codes].tolist()  # code -1: the "null" at the end


def _kernel_chunk(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray | None:
    """All of ``frame``'s records (``columns``) joined by ``SEP``, by the kernel; None if a text
    is not ASCII."""
    return _joined([_reader(frame, c) for c in columns], _keys(columns), 0, len(frame))


def flow_lines(flows: pd.DataFrame, columns: Sequence[str]) -> Iterator[bytes | np.ndarray]:
    """Compact JSON text of the flow records (exactly ``columns``; NaN/NA as null), as ASCII bytes in
    chunks of ``FLOW_CHUNK`` records joined by ``SEP``."""
    template = "{" + ",".join(compact(c).replace("%", "%%") + ":%s" for c in columns) + "}"
    readers = [_reader(flows, c) for c in columns]
    keys = _keys(columns)
    for start in range(0, len(flows), FLOW_CHUNK):
        stop = min(start + FLOW_CHUNK, len(flows))
        data = _joined(readers, keys, start, stop) if columns else None
        if data is not None:
            yield data
            continue
        frame = flows.iloc[start:stop].reindex(columns=list(columns))
        cells = [_encoded_column(frame[c]) for c in columns]
        yield _SEP.join(template % row for row in zip(*cells, strict=True)).encode("ascii")
