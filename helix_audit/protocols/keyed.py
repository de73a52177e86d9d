"""Per-batch look-ups by direction key in one pass each (numba), for the selection of every batch.

The same few numpy expressions ran over every row of every batch several times: the direction key
(``flow_id * 2 + from_a``: four passes and two temporaries), a mask look-up with bounds
(``selection.is_done``: five passes) and the first row of each key (``np.unique``: a sort). Each
kernel here gives exactly the numpy result in one pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _keys(flow_id, from_a):  # noqa: ANN001, ANN202
    out = np.empty(flow_id.shape[0], dtype=np.int64)
    for i in range(flow_id.shape[0]):
        out[i] = np.int64(flow_id[i]) * 2 + (1 if from_a[i] else 0)
    return out


def direction_keys(flow_id: np.ndarray, from_a: np.ndarray) -> np.ndarray:
    """``flow_id.astype(int64) * 2 + from_a.astype(int64)`` (``from_a`` boolean)."""
    if from_a.dtype != np.bool_:
        return flow_id.astype(np.int64) * 2 + from_a.astype(np.int64)
    return _keys(flow_id, from_a)


@njit(cache=True)
def _mask_at(mask, keys):  # noqa: ANN001, ANN202
    out = np.zeros(keys.shape[0], dtype=np.bool_)
    size = mask.shape[0]
    for i in range(keys.shape[0]):
        k = keys[i]
        if 0 <= k < size:
            out[i] = mask[k]
    return out


def mask_at(mask: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``mask[keys]`` where keys fall inside ``mask``, False elsewhere (negative keys included)."""
    if keys.ndim != 1 or mask.dtype != np.bool_ or keys.dtype.kind not in "iu":
        inside = (keys >= 0) & (keys < mask.size)
        out = np.zeros(keys.shape, dtype=bool)
        out[inside] = mask[keys[inside]]
        return out
    return _mask_at(mask, keys)


@njit(cache=True)
def _first_rows(keys, rows, lo, span):  # noqa: ANN001, ANN202
    first = np.full(span, -1, dtype=np.int64)
    count = 0
    for j in range(rows.shape[0]):
        at = keys[rows[j]] - lo
        if first[at] < 0:
            first[at] = j
            count += 1
    uniq = np.empty(count, dtype=np.int64)
    where = np.empty(count, dtype=np.int64)
    m = 0
    for at in range(span):
        if first[at] >= 0:
            uniq[m] = at + lo
            where[m] = first[at]
            m += 1
    return uniq, where


def first_index(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys[rows], return_index=True)``: the sorted distinct keys and the place in
    ``rows`` of each one's first row. A counting pass when the keys' range is not much wider than
    ``rows`` (as in a batch: mostly recent flows), else ``np.unique``."""
    if rows.size == 0 or keys.dtype != np.int64:
        uniq, at = np.unique(keys[rows], return_index=True)
        return uniq, at
    sel = keys[rows]
    lo, hi = int(sel.min()), int(sel.max())
    if hi - lo >= 4 * rows.size + 4096:
        uniq, at = np.unique(sel, return_index=True)
        return uniq, at
    return _first_rows(keys, rows.astype(np.int64, copy=False), lo, hi - lo + 1)


def unique_first(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True)`` (1-d, integers)."""
    if values.dtype != np.int64:
        uniq, at = np.unique(values, return_index=True)
        return uniq, at
    return first_index(values, np.arange(values.size, dtype=np.int64))


@njit(cache=True)
def _leading(groups, syn_only, lo, span):  # noqa: ANN001, ANN202
    first_other = np.full(span, groups.shape[0], dtype=np.int64)
    for j in range(groups.shape[0]):
        g = groups[j] - lo
        if not syn_only[j] and first_other[g] > j:
            first_other[g] = j
    out = np.zeros(groups.shape[0], dtype=np.bool_)
    for j in range(groups.shape[0]):
        out[j] = syn_only[j] and j < first_other[groups[j] - lo]
    return out


def leading(groups: np.ndarray, syn_only: np.ndarray) -> np.ndarray | None:
    """Per place j: ``syn_only[j]`` and no place before j of the same group is not ``syn_only``;
    None when the groups' range is too wide for a counting pass (the caller sorts instead)."""
    if groups.size == 0 or groups.dtype != np.int64:
        return None
    lo, hi = int(groups.min()), int(groups.max())
    if hi - lo >= 4 * groups.size + 4096:
        return None
    return _leading(groups, syn_only, lo, hi - lo + 1)


def _span(keys: np.ndarray, rows: np.ndarray) -> tuple[int, int] | None:
    """(lowest key, key range) of ``keys[rows]`` when a counting table over it is cheap, else None."""
    if rows.size == 0 or keys.dtype != np.int64:
        return None
    sel = keys[rows]
    lo, hi = int(sel.min()), int(sel.max())
    return None if hi - lo >= 4 * rows.size + 4096 else (lo, hi - lo + 1)


@njit(cache=True)
def _ranks(keys, rows, size, lo, span, max_rows, limit):  # noqa: ANN001, ANN202
    count = np.zeros(span, dtype=np.int64)
    before = np.zeros(span, dtype=np.int64)
    rank = np.empty(rows.shape[0], dtype=np.int64)
    keep = np.empty(rows.shape[0], dtype=np.bool_)
    for j in range(rows.shape[0]):
        g = keys[rows[j]] - lo
        rank[j] = count[g]
        keep[j] = count[g] < max_rows and before[g] < limit
        count[g] += 1
        before[g] += size[rows[j]]
    return rank, keep


def ranks(
    keys: np.ndarray, rows: np.ndarray, size: np.ndarray, max_rows: int, limit: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row of ``rows`` (batch order): its rank among the rows of its key, and whether it is
    among the first ``max_rows`` of them with fewer than ``limit`` bytes (``size``) before it. None
    when the keys' range is too wide for a counting pass (the caller sorts instead)."""
    got = _span(keys, rows)
    if got is None or size.dtype.kind not in "iu":
        return None
    return _ranks(keys, rows.astype(np.int64, copy=False), size, got[0], got[1], max_rows, limit)


@njit(cache=True)
def _next_rows(keys, rows, head, lo, span):  # noqa: ANN001, ANN202
    nxt = np.full(span, -1, dtype=np.int64)
    out = np.empty(rows.shape[0], dtype=np.int64)
    m = 0
    for j in range(rows.shape[0] - 1, -1, -1):
        r = rows[j]
        g = keys[r] - lo
        if head[r] and nxt[g] >= 0:
            out[m] = nxt[g]
            m += 1
        nxt[g] = r
    return out[:m]


def next_rows(keys: np.ndarray, rows: np.ndarray, head: np.ndarray) -> np.ndarray | None:
    """For each row of ``rows`` (ascending) marked in ``head`` (a mask by row), the next row of
    ``rows`` with the same key, if any (in no particular order). None when the keys' range is too
    wide for a counting pass."""
    got = _span(keys, rows)
    if got is None or head.dtype != np.bool_:
        return None
    return _next_rows(keys, rows.astype(np.int64, copy=False), head, got[0], got[1])


__all__ = ["direction_keys", "first_index", "leading", "mask_at", "next_rows", "ranks", "unique_first"]
