"""Reductions over the rows of a large finding a chunk at a time, with the whole-array results.

An inbound scan is one finding over every flow of the capture (10^6 for a SYN scan). Gathering a
string column at its rows and hashing it whole (``pd.factorize``) holds an object array and a hash
table sized by the row count (~70 MB at 10^6 rows) on top of the flow table; these read the rows
in chunks, so what stays is one int64 array of codes (or nothing), and give the same answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .flowrows import CodedColumn

#: Rows read at once (object gather + hash table of this many values).
CHUNK = 1 << 16


def factorize_rows(
    column: np.ndarray, rows: np.ndarray, use_na_sentinel: bool = True, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(column[rows], use_na_sentinel=...)``: codes in order of first appearance
    (int32 codes past one chunk, where they fit).

    Each chunk is factorised alone; its uniques (in first-appearance order, chunk after chunk) are
    then factorised together by pandas itself, which gives each value its first appearance overall
    under pandas' own equality (NaN handling included); the chunk codes are mapped through that.
    """
    n = rows.shape[0]
    if isinstance(column, CodedColumn) and use_na_sentinel and n:  # a Categorical: coded already
        return _factorize_codes(column.codes, column.lut[:-1], rows)
    if n <= chunk:
        return pd.factorize(column[rows], use_na_sentinel=use_na_sentinel)
    codes: np.ndarray = np.empty(n, dtype=np.int32 if n < 1 << 31 else np.intp)  # codes < n
    found: list[np.ndarray] = []
    for lo in range(0, n, chunk):
        local, uniq = pd.factorize(column[rows[lo : lo + chunk]], use_na_sentinel=use_na_sentinel)
        codes[lo : lo + chunk] = local
        found.append(np.asarray(uniq, dtype=object))
    glob, uniques = pd.factorize(np.concatenate(found), use_na_sentinel=use_na_sentinel)
    start = 0
    for k, lo in enumerate(range(0, n, chunk)):
        lut = glob[start : start + found[k].shape[0]]
        start += found[k].shape[0]
        part = codes[lo : lo + chunk]
        if lut.shape[0]:
            np.copyto(part, lut[np.maximum(part, 0)], where=part >= 0)
    return codes, uniques


def _factorize_codes(
    coded: np.ndarray, values: np.ndarray, rows: np.ndarray, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`factorize_rows` of a column already coded (``coded``, -1: missing, into ``values``):
    the rows' codes renumbered by first appearance, a chunk at a time (no object gather, no
    hashing, no row-sized temporaries: the codes out are int32, 4 B a row)."""
    n = rows.shape[0]
    first: dict[int, int] = {}  # code -> its first row (chunks in order: the first chunk's)
    for lo in range(0, n, chunk):
        used, at = np.unique(coded[rows[lo : lo + chunk]], return_index=True)
        for code, pos in zip(used.tolist(), at.tolist(), strict=True):
            if code >= 0 and code not in first:
                first[code] = lo + pos
    order = np.array(sorted(first, key=first.__getitem__), dtype=np.int64)
    lut = np.full(len(values) + 1, -1, dtype=np.int32 if n < 1 << 31 else np.int64)  # [code + 1]
    lut[order + 1] = np.arange(order.shape[0])
    codes = np.empty(n, dtype=lut.dtype)
    for lo in range(0, n, chunk):
        codes[lo : lo + chunk] = lut[coded[rows[lo : lo + chunk]].astype(np.int64) + 1]
    return codes, values[order]


def nan_bounds(column: np.ndarray, rows: np.ndarray, chunk: int = CHUNK) -> tuple[float, float]:
    """(min, max) of ``column[rows]`` as floats, NaN skipped; NaN where nothing is left."""
    lo_v, hi_v = np.inf, -np.inf
    seen = False
    for lo in range(0, rows.shape[0], chunk):
        v = column[rows[lo : lo + chunk]].astype(float, copy=False)
        v = v[~np.isnan(v)]
        if v.shape[0]:
            seen = True
            lo_v, hi_v = min(lo_v, float(v.min())), max(hi_v, float(v.max()))
    return (lo_v, hi_v) if seen else (float("nan"), float("nan"))


def earliest(column: np.ndarray, rows: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """``np.argsort(column[rows].astype(float), kind="stable")[:k]``, without the whole sort."""
    n = rows.shape[0]
    if n <= chunk:
        return np.argsort(column[rows].astype(float, copy=False), kind="stable")[:k]
    picked = []
    for lo in range(0, n, chunk):  # the first k overall are among the first k of their chunk
        v = column[rows[lo : lo + chunk]].astype(float, copy=False)
        picked.append(np.argsort(v, kind="stable")[:k] + lo)
    cand = np.sort(np.concatenate(picked))  # by position: the stable sort below breaks ties by it
    values = column[rows[cand]].astype(float, copy=False)
    return cand[np.argsort(values, kind="stable")[:k]]


def last_of(column: np.ndarray, rows: np.ndarray, chunk: int = CHUNK) -> int | None:
    """``np.nanargmax(column[rows].astype(float))`` (first of the largest); None when all are NaN."""
    best, at = -np.inf, None
    for lo in range(0, rows.shape[0], chunk):
        v = column[rows[lo : lo + chunk]].astype(float, copy=False)
        if np.isnan(v).all():
            continue
        j = int(np.nanargmax(v))
        if at is None or v[j] > best:
            best, at = float(v[j]), lo + j
    return at


def last_in_order(column: np.ndarray, rows: np.ndarray) -> int:
    """``np.argsort(column[rows].astype(float), kind="stable")[-1]``: the last of the largest, NaN
    last (the position of the last NaN when there is one)."""
    v = column[rows].astype(float, copy=False)
    nan = np.flatnonzero(np.isnan(v))
    if nan.shape[0]:
        return int(nan[-1])
    return int(v.shape[0] - 1 - np.argmax(v[::-1]))


__all__ = ["CHUNK", "earliest", "factorize_rows", "last_in_order", "last_of", "nan_bounds"]
