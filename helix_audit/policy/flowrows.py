"""Flow rows behind a finding, as positions into one shared set of column arrays.

Building thousands of findings from a 100k-flow table must not slice a DataFrame per finding (each
slice copies and re-consolidates every column): :class:`Columns` converts each column of the
classified flow table to a numpy array once, :class:`FlowRows` is a group of row positions into it,
and :class:`Row` is one row read column by column (what ``part.iloc[0]`` gave, without building it).
:func:`group_positions` splits a frame into the groups ``DataFrame.groupby(keys, sort=True,
dropna=False)`` iterates, in the same order, with one vectorised group-by.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .flowcodes import category_lut


class CodedColumn:
    """A Categorical flow column read as :class:`Columns` reads columns, without its object array.

    ``Series.to_numpy()`` of a Categorical is an object array (8 B a flow) built by a take of the
    categories: for a million-flow table each column read cost that much memory and ~10 ms,
    while readers look at a few rows or compare with one text. Indexing gives what indexing the
    object array gives (a value, missing = NaN; or an object array of the rows); ``==`` / ``!=``
    with one value compare codes; anything else converts (``__array__``)."""

    __slots__ = ("codes", "lut", "shape", "ascending")

    def __init__(self, cat: pd.Categorical) -> None:
        self.codes = np.asarray(cat.codes)
        self.lut = category_lut(cat)
        self.shape = self.codes.shape
        self.ascending = bool(cat.categories.is_monotonic_increasing)  # codes sort as the values

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, at: Any) -> Any:
        return self.lut[self.codes[at]]  # code -1 reads the last entry (NaN)

    def _hits(self, value: object) -> np.ndarray:
        if isinstance(value, (np.ndarray, list, tuple, pd.Series, CodedColumn)):
            return np.asarray(np.asarray(self) == np.asarray(value), dtype=bool)
        return np.array([v == value for v in self.lut[:-1].tolist()] + [False], dtype=bool)[self.codes]

    def __eq__(self, value: object) -> np.ndarray:  # type: ignore[override]
        return self._hits(value)

    def __ne__(self, value: object) -> np.ndarray:  # type: ignore[override]
        return ~self._hits(value)

    __hash__ = None  # type: ignore[assignment]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.lut[self.codes]
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list[Any]:
        return self.lut[self.codes].tolist()


def _array(series: pd.Series) -> np.ndarray:
    """The column as :class:`Columns` reads it (a Categorical as :class:`CodedColumn`: it reads
    as the object array would, for what :class:`Columns`' readers do with it)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) and dtype.categories.dtype.kind == "O":  # texts
        return CodedColumn(series.array)  # type: ignore[return-value]
    return series.to_numpy()


class Columns:
    """Column arrays of a flow DataFrame (``Series.to_numpy()``), converted on first use
    (Categorical ones as :class:`CodedColumn`)."""

    def __init__(self, frame: pd.DataFrame, overrides: Mapping[str, np.ndarray] | None = None) -> None:
        self.frame = frame
        self._cache: dict[str, np.ndarray] = {}  # the frame's own columns, shared with replace()
        self._overrides = dict(overrides or {})
        self.arrays: dict[str, np.ndarray] = dict(self._overrides)  # what this view reads
        self._names = frozenset(frame.columns) | frozenset(self._overrides)

    def __call__(self, name: str) -> np.ndarray:
        col = self.arrays.get(name)
        if col is None:
            col = self._cache.get(name)
            if col is None:
                col = self._cache[name] = _array(self.frame[name])
            self.arrays[name] = col
        return col

    def has(self, name: str) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self.frame)

    def replace(self, **columns: np.ndarray) -> Columns:
        """The same columns (cache shared) with some replaced by full-length arrays."""
        out = Columns(self.frame, {**self._overrides, **columns})
        out._cache = self._cache
        return out


@dataclass(frozen=True)
class FlowRows:
    """Rows of a flow table (``pos``: positions in ``cols``, in the order they were gathered)."""

    cols: Columns
    pos: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> FlowRows:
        return cls(Columns(frame), np.arange(len(frame), dtype=np.int64))

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    @property
    def empty(self) -> bool:
        return self.pos.shape[0] == 0

    def col(self, name: str) -> np.ndarray:
        return self.cols(name)[self.pos]

    def has(self, name: str) -> bool:
        return self.cols.has(name)

    def values(self, name: str) -> list[Any]:
        """The column's values in these rows, as Python objects (``col(name).tolist()``)."""
        if self.pos.shape[0] == 1:
            at = int(self.pos[0])
            return self.cols(name)[at : at + 1].tolist()
        return self.cols(name)[self.pos].tolist()

    def first(self) -> Row:
        return Row(self.cols, int(self.pos[0]))

    def take(self, positions: np.ndarray) -> FlowRows:
        """Sub-rows by position within this group."""
        return FlowRows(self.cols, self.pos[positions])

    def concat(self, other: FlowRows) -> FlowRows:
        if other.cols.frame is not self.cols.frame:
            raise ValueError("FlowRows of different flow tables cannot be merged")
        return FlowRows(self.cols, np.concatenate([self.pos, other.pos]))


class Row(Mapping[str, Any]):
    """One flow row, read lazily column by column."""

    __slots__ = ("_cols", "_pos")

    def __init__(self, cols: Columns, pos: int) -> None:
        self._cols, self._pos = cols, pos

    def __getitem__(self, name: str) -> Any:
        col = self._cols.arrays.get(name)
        if col is None:
            if not self._cols.has(name):
                raise KeyError(name)
            col = self._cols(name)
        return col[self._pos]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols.frame.columns)

    def __len__(self) -> int:
        return len(self._cols.frame.columns)


def group_positions(cols: Columns, keys: list[str], mask: np.ndarray) -> list[np.ndarray]:
    """Row positions (into ``cols``) of each group of ``frame[mask].groupby(keys, sort=True,
    dropna=False)``, groups in iteration order, rows in frame order.

    What the group-by does, on integer codes: each key column is factorised in sorted order
    (missing values last), and the rows are sorted by the codes, key by key, then by position."""
    idx = np.flatnonzero(mask)
    if idx.shape[0] == 0:
        return []
    codes = []
    for key in keys:
        col = cols(key)
        if isinstance(col, CodedColumn) and col.ascending:  # codes already sort as the values
            code = col.codes[idx].astype(np.int64)
            codes.append(np.where(code < 0, len(col.lut), code))
            continue
        code, uniques = pd.factorize(col[idx], sort=True)
        codes.append(np.where(code < 0, len(uniques), code))
    order = np.lexsort([np.arange(idx.shape[0]), *reversed(codes)])
    ranked = np.stack([c[order] for c in codes])
    cuts = np.flatnonzero((ranked[:, 1:] != ranked[:, :-1]).any(axis=0)) + 1
    return np.split(idx[order], cuts)


def value_counts(values: np.ndarray) -> list[tuple[Any, int]]:
    """``Series(values).value_counts()`` as (value, count) pairs: most frequent first; ties keep the
    order pandas gives them (asked of pandas itself when there are ties)."""
    counts: dict[Any, int] = {}
    for v in values.tolist():
        counts[v] = counts.get(v, 0) + 1
    if len(set(counts.values())) == len(counts):
        return sorted(counts.items(), key=lambda kv: -kv[1])
    series = pd.Series(values, dtype=object).value_counts()
    return list(zip(series.index.tolist(), series.tolist(), strict=True))
