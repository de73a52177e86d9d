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

from ..arrays import sorted_unique, swap_where
from ..decode.interface import addr_to_str

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
    texts themselves (and ``value_counts`` lists no unused category)."""
    codes = np.asarray(codes)
    present = codes[codes >= 0] if len(codes) and codes.min() < 0 else codes
    used = np.flatnonzero(np.bincount(present, minlength=len(texts))) if len(present) else present[:0]
    names = [texts[i] for i in used.tolist()]
    uniq = sorted(set(names))
    rank = {t: k for k, t in enumerate(uniq)}
    kind = code_dtype(len(uniq))
    lut = np.full(len(texts) + 1, -1, dtype=kind)  # the last entry: code -1's
    lut[used] = np.array([rank[t] for t in names], dtype=kind)
    return pd.Categorical.from_codes(lut[codes], pd.Index(uniq, dtype=object), validate=False)


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
    """(orig_h, resp_h): text addresses of the tuples' A and B (``ku``: a_hi, a_lo, b_hi, b_lo),
    swapped where B is the originator, as two Categoricals of one dtype: the distinct addresses of
    both columns, ascending as texts (what ordering or grouping by the texts expects), and int32
    codes (4 B a flow and column, where object columns of shared strs were 8). Each distinct
    IPv4-mapped address is rendered once, rows coded ``CHUNK_ROWS`` at a time by a search of the
    sorted distinct ones (one pass over 3M flows at once made ~165 MB of temporaries); the (rarer)
    IPv6 ones once per address."""
    n = len(o)
    sides = [(ku[:, 0], ku[:, 1]), (ku[:, 2], ku[:, 3])]
    v4 = [(hi == 0) & ((lo >> np.uint64(32)) == 0xFFFF) for hi, lo in sides]
    # numpy 2's ``np.unique`` of a flow-sized array takes its superlinear hash path: sort instead
    v4_lo = np.concatenate([lo[m].astype(np.uint32) for (_, lo), m in zip(sides, v4, strict=True)])
    uniq = sorted_unique(v4_lo, in_place=True).copy()  # compact: the flow-sized buffer goes
    del v4_lo
    texts: list[str] = []
    for c in range(0, len(uniq), CHUNK_ROWS):
        texts += ipv4_text(uniq[c : c + CHUNK_ROWS]).tolist()
    rest = [np.flatnonzero(~m) for m in v4]
    v6_inv: list[np.ndarray] = []
    if any(len(r) for r in rest):  # both sides' IPv6 addresses in one code space
        pairs = np.concatenate(
            [np.stack([hi[r], lo[r]], axis=1) for (hi, lo), r in zip(sides, rest, strict=True)]
        )
        got, inv = np.unique(pairs, axis=0, return_inverse=True)
        inv = inv.reshape(-1) + len(texts)
        v6_inv = [inv[: len(rest[0])], inv[len(rest[0]) :]]
        texts += [addr_to_str(h, lo_) for h, lo_ in got.tolist()]
    kind = np.int32 if len(texts) < np.iinfo(np.int32).max else np.int64
    order = sorted(range(len(texts)), key=texts.__getitem__)  # distinct texts: a strict order
    rank = np.empty(len(texts), dtype=kind)
    rank[order] = np.arange(len(texts), dtype=kind)
    v4_rank = rank[: len(uniq)]
    cols = [np.empty(n, dtype=kind), np.empty(n, dtype=kind)]
    for k, ((_, lo), m, out) in enumerate(zip(sides, v4, cols, strict=True)):
        for c in range(0, n, CHUNK_ROWS):
            at = slice(c, c + CHUNK_ROWS)
            vals = lo[at][m[at]].astype(np.uint32)
            if len(uniq) > SEARCH_MAX:  # many addresses: search a chunk's distinct ones only
                vals, inv = np.unique(vals, return_inverse=True)
                out[at][m[at]] = v4_rank[np.searchsorted(uniq, vals)][inv.reshape(-1)]
            else:
                out[at][m[at]] = v4_rank[np.searchsorted(uniq, vals)]
        if len(rest[k]):
            out[rest[k]] = rank[v6_inv[k]]
    orig, resp = cols
    swap_where(o, [(orig, resp)])
    dtype = pd.CategoricalDtype(pd.Index([texts[i] for i in order], dtype=object))
    return (
        pd.Categorical.from_codes(orig, dtype=dtype, validate=False),
        pd.Categorical.from_codes(resp, dtype=dtype, validate=False),
    )
