"""Flow records of report.json assembled by a numba kernel from column-wise cells, as bytes.

A report lists every flow (a SYN scan: a million of them). Joining 45 cells per row with Python
string formatting cost ~7 µs a row; here one kernel call writes a whole chunk of rows into one byte
buffer, which goes to the file (and the SHA-256) as it is: no str, no decode, no encode.

A column is either integers, formatted by the kernel itself (the digits ``repr`` and orjson write),
or text cells: one ASCII byte blob plus (start, end) offsets per row. A text column's blob holds
each distinct value's JSON text once and its rows point into it; a float or boolean column's blob is
orjson's array text, cut at the commas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

TEXT = 0  # a: start, b: end of the cell in the data blob
INT = 1  # a: the value, b: 1 for null


class Cells(NamedTuple):
    """One column of a chunk: ``kind`` TEXT (``blob[a[i]:b[i]]`` is row i's JSON text) or INT
    (``a[i]`` is row i's value, null where ``b[i]``; ``blob`` is empty)."""

    kind: int
    blob: bytes
    a: np.ndarray
    b: np.ndarray


def text_cells(texts: Sequence[str], codes: np.ndarray) -> Cells | None:
    """Cells of a column given as the distinct values' JSON texts and per-row codes into them;
    None if a text is not ASCII (never for texts json or orjson wrote with ASCII escapes)."""
    try:
        parts = [t.encode("ascii") for t in texts]
    except UnicodeEncodeError:
        return None
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    ends = np.cumsum(lengths)
    return Cells(TEXT, b"".join(parts), (ends - lengths)[codes], ends[codes])


def quoted_cells(values: list[object], codes: np.ndarray) -> Cells | None:
    """Cells of a column whose distinct values are plain strings (every character printable ASCII
    but ``"`` and ``\\``), each JSON-quoted once; a code of -1 is null. None when a value is not
    such a string: the caller encodes the values one by one."""
    try:
        quoted = ('"' + '""'.join(values) + '"').encode("ascii") if values else b""  # type: ignore[arg-type]
    except (TypeError, UnicodeEncodeError):
        return None
    raw = np.frombuffer(quoted, dtype=np.uint8)
    if (raw < 0x20).any() or (raw >= 0x7F).any() or (raw == 0x5C).any():
        return None
    if np.count_nonzero(raw == 0x22) != 2 * len(values):  # a quote inside a value
        return None
    blob = quoted + b"null"
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values)) + 2  # type: ignore[arg-type]
    ends = np.append(np.cumsum(lengths), len(blob))
    starts = np.append(ends[:-1] - lengths, len(blob) - 4)
    return Cells(TEXT, blob, starts[codes], ends[codes])


def number_cells(text: bytes, rows: int) -> Cells:
    """Cells from orjson's text of a numeric array without its brackets (``1,2.5,3``)."""
    buf = np.frombuffer(text, dtype=np.uint8)
    commas = np.flatnonzero(buf == ord(","))
    if commas.size != rows - 1:
        raise ValueError("number text does not split into one cell per row")
    starts = np.concatenate(([0], commas + 1)).astype(np.int64)
    ends = np.concatenate((commas, [len(text)])).astype(np.int64)
    return Cells(TEXT, text, starts, ends)


def int_cells(values: np.ndarray, null: np.ndarray | None = None) -> Cells:
    """Cells of an integer column (int64 range); ``null`` marks missing values."""
    flags = np.zeros(len(values), dtype=np.int64) if null is None else null.astype(np.int64)
    return Cells(INT, b"", values.astype(np.int64, copy=False), flags)


_INT_MIN = b"-9223372036854775808"


@njit(cache=True)
def _assemble(
    data: np.ndarray,
    kinds: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    keys: np.ndarray,
    key_ends: np.ndarray,
    sep: np.ndarray,
    int_min: np.ndarray,
    out: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Byte loops, not slice copies: cells and keys are a few bytes, and a numba slice costs more
    than copying them (measured: 14 vs 18-33 ms for 16k rows); ``a``, ``b`` are row-major."""
    pos = 0
    nrows, ncols = a.shape
    for i in range(nrows):
        if i:
            for k in range(sep.size):
                out[pos] = sep[k]
                pos += 1
        out[pos] = 123  # {
        pos += 1
        k0 = 0
        for j in range(ncols):
            for k in range(k0, key_ends[j]):
                out[pos] = keys[k]
                pos += 1
            k0 = key_ends[j]
            if kinds[j] == 0:
                for k in range(a[i, j], b[i, j]):
                    out[pos] = data[k]
                    pos += 1
            elif b[i, j]:
                out[pos] = 110  # null
                out[pos + 1] = 117
                out[pos + 2] = 108
                out[pos + 3] = 108
                pos += 4
            else:
                v = a[i, j]
                if v < 0:
                    if v == -v:  # the int64 minimum has no positive counterpart
                        for k in range(int_min.size):
                            out[pos] = int_min[k]
                            pos += 1
                        continue
                    out[pos] = 45  # -
                    pos += 1
                    v = -v
                digits = 1
                t = v
                while t >= 10:
                    t //= 10
                    digits += 1
                p = pos + digits - 1
                while True:
                    out[p] = 48 + v % 10
                    v //= 10
                    p -= 1
                    if v == 0:
                        break
                pos += digits
        out[pos] = 125  # }
        pos += 1
    return pos


def join_rows(keys: Sequence[str], cells: Sequence[Cells], sep: str) -> np.ndarray:
    """``sep.join('{' + key0 + cell0 + key1 + cell1 + ... + '}' for each row)`` as ASCII bytes (a
    uint8 array); each key is the text before its cell (``'"a":'``, then ``',"b":'``)."""
    rows = len(cells[0].a) if cells else 0
    if rows == 0:
        return np.zeros(0, dtype=np.uint8)
    data = np.frombuffer(b"".join(c.blob for c in cells) or b"\0", dtype=np.uint8)
    kinds = np.array([c.kind for c in cells], dtype=np.uint8)
    a = np.empty((rows, len(cells)), dtype=np.int64)
    b = np.empty((rows, len(cells)), dtype=np.int64)
    base = text_size = 0
    for j, c in enumerate(cells):
        if c.kind == TEXT:
            np.add(c.a, base, out=a[:, j])
            np.add(c.b, base, out=b[:, j])
            text_size += int(c.b.sum() - c.a.sum())
        else:
            a[:, j] = c.a
            b[:, j] = c.b
        base += len(c.blob)
    key_bytes = [k.encode("ascii") for k in keys]
    key_ends = np.cumsum([len(k) for k in key_bytes], dtype=np.int64)
    key_buf = np.frombuffer(b"".join(key_bytes) or b"\0", dtype=np.uint8)
    sep_buf = np.frombuffer(sep.encode("ascii"), dtype=np.uint8)
    int_size = int(np.count_nonzero(kinds == INT)) * rows * len(_INT_MIN)
    size = text_size + int_size + rows * (int(key_ends[-1]) + 2 + len(sep_buf))
    out = np.empty(size, dtype=np.uint8)
    int_min = np.frombuffer(_INT_MIN, dtype=np.uint8)
    end = _assemble(data, kinds, a, b, key_buf, key_ends, sep_buf, int_min, out)
    return out[:end]
