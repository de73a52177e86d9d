"""Flow records of report.json assembled by a numba kernel from column-wise JSON text.

A report lists every flow (a SYN scan: a million of them). Encoding is already column-wise (numbers
by orjson over a whole column, other values once per distinct value); what remained was joining 45
cells per row with Python string formatting, ~7 µs a row. Here each column is one ASCII byte blob
plus (start, end) offsets per row: a text column's blob holds each distinct value once and its rows
point into it; a number column's blob is orjson's array text, cut at the commas. One kernel call
copies key prefixes and cells into the chunk's bytes. Any non-ASCII text returns None and the
caller formats the chunk the plain way (the report is ASCII-only; such values are escaped there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

Cells = tuple[bytes, np.ndarray, np.ndarray]  # blob, starts, ends (row i is blob[starts[i]:ends[i]])


def text_cells(uniques: Sequence[str], codes: np.ndarray) -> Cells | None:
    """Cells of a column given as distinct texts and per-row codes into them."""
    try:
        parts = [u.encode("ascii") for u in uniques]
    except UnicodeEncodeError:
        return None
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return b"".join(parts), starts[codes], ends[codes]


def number_cells(text: bytes, rows: int) -> Cells:
    """Cells from orjson's text of a numeric array without its brackets (``1,2.5,3``)."""
    buf = np.frombuffer(text, dtype=np.uint8)
    commas = np.flatnonzero(buf == ord(","))
    if commas.size != rows - 1:
        raise ValueError("number text does not split into one cell per row")
    starts = np.concatenate(([0], commas + 1)).astype(np.int64)
    ends = np.concatenate((commas, [len(text)])).astype(np.int64)
    return text, starts, ends


@njit(cache=True)
def _assemble(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    keys: np.ndarray,
    key_ends: np.ndarray,
    sep: np.ndarray,
    out: np.ndarray,
) -> int:  # pragma: no cover - compiled
    pos = 0
    ncols, nrows = starts.shape
    for i in range(nrows):
        if i:
            for b in sep:
                out[pos] = b
                pos += 1
        out[pos] = 123  # {
        pos += 1
        k0 = 0
        for j in range(ncols):
            for k in range(k0, key_ends[j]):
                out[pos] = keys[k]
                pos += 1
            k0 = key_ends[j]
            for k in range(starts[j, i], ends[j, i]):
                out[pos] = data[k]
                pos += 1
        out[pos] = 125  # }
        pos += 1
    return pos


def join_rows(keys: Sequence[str], cells: Sequence[Cells], sep: str) -> str:
    """``sep.join('{' + key0 + cell0 + key1 + cell1 + ... + '}' for each row)``; each key is the
    text before its cell (``'"a":'``, then ``',"b":'``)."""
    rows = len(cells[0][1]) if cells else 0
    if rows == 0:
        return ""
    base = np.cumsum([0] + [len(c[0]) for c in cells[:-1]], dtype=np.int64)
    data = np.frombuffer(b"".join(c[0] for c in cells), dtype=np.uint8)
    starts = np.stack([c[1] + b for c, b in zip(cells, base, strict=True)]).astype(np.int64)
    ends = np.stack([c[2] + b for c, b in zip(cells, base, strict=True)]).astype(np.int64)
    key_bytes = [k.encode("ascii") for k in keys]
    key_ends = np.cumsum([len(k) for k in key_bytes], dtype=np.int64)
    key_buf = np.frombuffer(b"".join(key_bytes) or b"\0", dtype=np.uint8)
    sep_buf = np.frombuffer(sep.encode("ascii"), dtype=np.uint8)
    size = int((ends - starts).sum()) + rows * (int(key_ends[-1]) + 2 + len(sep_buf))
    out = np.empty(size, dtype=np.uint8)
    end = _assemble(data, starts, ends, key_buf, key_ends, sep_buf, out)
    return out[:end].tobytes().decode("ascii")
