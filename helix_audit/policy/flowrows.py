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


class Columns:
    """Column arrays of a flow DataFrame (``Series.to_numpy()``), converted on first use."""

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
                col = self._cache[name] = self.frame[name].to_numpy()
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
        code, uniques = pd.factorize(cols(key)[idx], sort=True)
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
