"""Decimal text of integer rows, for columns with a string per flow (a million flows on a SYN scan).

Building strings with numpy object arrays (``a + "," + b``) runs Python per element and operator;
here a numba kernel writes the digits of every row into one byte buffer, rows ended by a newline,
and Python makes all the strings with a single ``split``: one pass, no per-row interpreter work.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numba import njit

_NL = 10
CHUNK_ROWS = 1 << 16  # rows rendered per buffer
SEARCH_MAX = 1 << 12  # distinct addresses up to which each row's is searched for (a cached search)


@njit(cache=True, inline="always")
def _put_digits(out, pos, v, digits):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """The decimal digits of ``v`` >= 0 at ``out[pos:]``; returns the position after them."""
    n = 0
    while True:
        digits[n] = 48 + v % 10
        n += 1
        v //= 10
        if v == 0:
            break
    for j in range(n - 1, -1, -1):
        out[pos] = digits[j]
        pos += 1
    return pos


@njit(cache=True)
def _render(m: np.ndarray, skip: int, sep: int, out: np.ndarray) -> int:  # pragma: no cover - compiled
    pos = 0
    digits = np.empty(20, dtype=np.uint8)
    for i in range(m.shape[0]):
        first = True
        for k in range(m.shape[1]):
            v = m[i, k]
            if v == skip:
                continue
            if not first:
                out[pos] = sep
                pos += 1
            first = False
            if v < 0:  # never in our columns; written plainly all the same
                out[pos] = 45
                pos += 1
                v = -v
            pos = _put_digits(out, pos, v, digits)
        out[pos] = _NL
        pos += 1
    return pos


@njit(cache=True)
def _sort_unique_rows(m: np.ndarray, fill: int) -> None:  # pragma: no cover - compiled
    width = m.shape[1]
    for i in range(m.shape[0]):
        row = m[i]
        for a in range(1, width):  # insertion sort: rows are short
            v = row[a]
            b = a - 1
            while b >= 0 and row[b] > v:
                row[b + 1] = row[b]
                b -= 1
            row[b + 1] = v
        n = 0
        for a in range(width):
            if row[a] != fill and (n == 0 or row[a] != row[n - 1]):
                row[n] = row[a]
                n += 1
        for a in range(n, width):
            row[a] = fill


def sorted_unique_rows(m: np.ndarray, fill: int) -> np.ndarray:
    """Each row of ``m`` sorted ascending without repeats or ``fill`` values, then padded with
    ``fill`` (a copy; ``fill`` is the largest value, e.g. the "no event" marker)."""
    out = np.array(m, dtype=np.int64, order="C", copy=True)
    _sort_unique_rows(out, fill)
    return out


def rows_text(m: np.ndarray, sep: str, skip: int | None = None) -> np.ndarray:
    """Per row of the 2-D integer array ``m``: its values in decimal joined by ``sep`` (values equal
    to ``skip`` left out), as an object array of str. ``[[1, 2], [3, skip]]``, "," -> ["1,2", "3"]."""
    m = np.ascontiguousarray(m, dtype=np.int64)
    rows = m.shape[0]
    if rows == 0:
        return np.empty(0, dtype=object)
    marker = np.iinfo(np.int64).min if skip is None else skip  # min never occurs: -v overflows it
    step = min(rows, CHUNK_ROWS)  # the buffer is sized for the widest rows: a chunk at a time
    out = np.empty(step * (m.shape[1] * 21 + 1), dtype=np.uint8)
    arr = np.empty(rows, dtype=object)
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        end = _render(m[lo:hi], marker, ord(sep), out)
        texts = out[:end].tobytes().decode("ascii").split("\n")
        texts.pop()  # after the last newline
        arr[lo:hi] = texts
    return arr


def code_dtype(n: int) -> type[np.signedinteger]:
    """The smallest signed integer type holding codes 0 .. ``n`` - 1 (and pandas' -1)."""
    for kind in (np.int8, np.int16, np.int32):
        if n < np.iinfo(kind).max:
            return kind
    return np.int64


def categorical(codes: np.ndarray, texts: Sequence[str]) -> pd.Categorical:
    """The column ``texts[codes]`` as a Categorical (code -1: missing): a flow column of few
    distinct texts is a byte a flow, not an 8-byte pointer. Its categories are the texts used,
    distinct and ascending, so that anything ordering or grouping by them orders as it did the
    texts themselves (and ``value_counts`` lists no unused category). ``CHUNK_ROWS`` codes at a
    time: ``bincount`` and indexing make intp copies of their input (8 B a flow, 23 MB on 3M flows,
    next to every aggregate)."""
    codes = np.asarray(codes)
    seen = np.zeros(len(texts), dtype=np.int64)
    for lo in range(0, len(codes), CHUNK_ROWS):
        part = codes[lo : lo + CHUNK_ROWS]
        if part.min() < 0:
            part = part[part >= 0]
        counts = np.bincount(part, minlength=len(seen))
        if len(counts) > len(seen):  # a code past the texts: IndexError below, as ever
            counts[: len(seen)] += seen
            seen = counts
        else:
            seen += counts
    used = np.flatnonzero(seen)
    names = [texts[i] for i in used.tolist()]
    uniq = sorted(set(names))
    rank = {t: k for k, t in enumerate(uniq)}
    kind = code_dtype(len(uniq))
    lut = np.full(len(texts) + 1, -1, dtype=kind)  # the last entry: code -1's
    lut[used] = np.array([rank[t] for t in names], dtype=kind)
    out = np.empty(len(codes), dtype=kind)
    for lo in range(0, len(codes), CHUNK_ROWS):
        out[lo : lo + CHUNK_ROWS] = lut[codes[lo : lo + CHUNK_ROWS]]
    return pd.Categorical.from_codes(out, pd.Index(uniq, dtype=object), validate=False)


def narrow_int(values: np.ndarray) -> np.ndarray:
    """``values`` (integers >= 0) as int32 when they fit (counters of a flow: 4 bytes, not 8), else
    as they are: an int32 column never overflows, it only stays int64 on an absurd capture."""
    if values.size == 0 or int(values.max()) <= np.iinfo(np.int32).max:
        return values.astype(np.int32)
    return values


def ipv4_text(values: np.ndarray) -> np.ndarray:
    """Dotted-quad text of 32-bit addresses (each distinct address rendered once)."""
    uniq, inv = np.unique(np.asarray(values, dtype=np.uint64), return_inverse=True)
    octets = ((uniq[:, None] >> np.array([24, 16, 8, 0], dtype=np.uint64)) & np.uint64(0xFF)).astype(np.int64)
    return rows_text(octets, ".")[inv.reshape(-1)]


@njit(cache=True)
def _frames(m, fill, keep, shift, first_file, sep, out, other):  # pragma: no cover - compiled
    """``frames_text`` in one pass per row: sort and dedupe the row in place (as
    ``_sort_unique_rows``), render the low bits of its first ``keep`` values, flag other files."""
    mask = (np.int64(1) << shift) - 1
    _sort_unique_rows(m, fill)
    digits = np.empty(20, dtype=np.uint8)
    pos = 0
    for i in range(m.shape[0]):
        flag = False
        for a in range(min(keep, m.shape[1])):
            v = m[i, a]
            if v == fill:
                break
            if (v >> shift) != first_file[i]:
                flag = True
            if a:
                out[pos] = sep
                pos += 1
            v &= mask
            pos = _put_digits(out, pos, v, digits)
        out[pos] = _NL
        pos += 1
        other[i] = flag
    return pos


def frames_text(
    m: np.ndarray, fill: int, keep: int, shift: int, first_file: np.ndarray, sep: str = ","
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``m`` (non-negative *orders*, file << ``shift`` | frame, or ``fill``, the largest
    value): its first ``keep`` distinct orders ascending, rendered as their frames joined by
    ``sep``; and per row whether one of those is in another file than ``first_file``'s (the caller
    renders those rows itself). ``m`` is left sorted and deduplicated (as ``sorted_unique_rows``
    returns it). The fused form of ``rows_text(where(present, sorted_unique_rows(m) & mask, skip))``
    for the key frames of a million flows: one pass, no row-sized temporaries."""
    buf, other = frames_buffer(m, fill, keep, shift, first_file, sep)
    texts = buf.tobytes().decode("ascii").split("\n")
    texts.pop()  # after the last newline
    arr = np.empty(len(other), dtype=object)
    arr[:] = texts
    return arr, other


def frames_buffer(
    m: np.ndarray, fill: int, keep: int, shift: int, first_file: np.ndarray, sep: str = ","
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`frames_text` as the kernel writes it: the rows' texts, each ended by a newline, in one
    ASCII buffer (uint8, of its own) - what :class:`.blob.TextBlobArray` holds - and the flags."""
    if m.dtype != np.int64 or m.ndim != 2 or not (m.flags.c_contiguous and m.flags.writeable):
        raise ValueError("frames_text: m must be a writable C-contiguous 2-D int64 array (sorted in place)")
    rows = m.shape[0]
    other = np.zeros(rows, dtype=np.bool_)
    if rows == 0:
        return np.zeros(0, dtype=np.uint8), other
    out = np.empty(rows * (min(keep, m.shape[1]) * 21 + 1), dtype=np.uint8)
    first = np.ascontiguousarray(first_file, dtype=np.int64)
    end = _frames(m, fill, keep, shift, first, ord(sep), out, other)
    return out[:end].copy(), other  # the buffer is sized for the widest rows: not kept


def host_columns(ku: np.ndarray, o: np.ndarray) -> tuple[pd.Categorical, pd.Categorical]:
    """(orig_h, resp_h) of the tuples' addresses ``ku`` (a_hi, a_lo, b_hi, b_lo) oriented by ``o``:
    :func:`.hosts.host_codes` and :func:`.hosts.host_columns_of` in one step."""
    from .hosts import host_codes, host_columns_of  # (hosts builds on this module)

    return host_columns_of(host_codes(ku), o)
