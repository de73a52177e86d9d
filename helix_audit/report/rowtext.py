"""Flow records of report.json assembled by a numba kernel from column-wise cells, as bytes.

A report lists every flow (a SYN scan: a million of them). Joining 45 cells per row with Python
string formatting cost ~7 µs a row; here one kernel call writes a whole chunk of rows into one byte
buffer, which goes to the file (and the SHA-256) as it is: no str, no decode, no encode.

A column is either integers, formatted by the kernel itself (the digits ``repr`` and orjson write),
or text cells: one ASCII byte blob plus (start, end) offsets per text. A text column's blob holds
each distinct object's JSON text once (found by identity, :func:`identities`) and its rows point
into it; a float or boolean column's blob is orjson's array text, cut at the commas.

The kernel (:mod:`.rowkernel`) copies eight bytes at a time (unaligned 64-bit loads and stores), and a
column that is the same in every row of a chunk becomes part of the literal text between two
variable cells. On the 1M-flow SYN scan (843 MB) the byte-by-byte loop over every key and cell
took ~0.8 s, word copies ~0.3 s, word copies of the folded rows ~0.15 s. A copy may read up to 7
bytes past the end of its source and write up to 7 past the end of its text (the next write covers
them): every buffer the kernel reads carries ``PAD`` bytes of slack, and so does its output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..arrays import addresses
from .rowkernel import INT, NULLABLE, PAD, TEXT, assemble, identity_codes, splice_kernel


class Cells(NamedTuple):
    """One column of a chunk. TEXT: ``blob[a[k]:b[k]]`` is text k, row i's text is ``codes[i]``
    (text i without codes). INT: ``a[i]`` is row i's value, null where ``b[i]`` (no nulls if ``b``
    is None); ``blob`` is empty."""

    kind: int
    blob: bytes
    a: np.ndarray
    b: np.ndarray | None
    codes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.a if self.codes is None else self.codes)


def text_cells(texts: Sequence[str], codes: np.ndarray) -> Cells | None:
    """Cells of a column given as the distinct values' JSON texts and per-row codes into them;
    None if a text is not ASCII (never for texts json or orjson wrote with ASCII escapes)."""
    try:
        parts = [t.encode("ascii") for t in texts]
    except UnicodeEncodeError:
        return None
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    ends = np.cumsum(lengths)
    return Cells(TEXT, b"".join(parts), ends - lengths, ends, codes)


#: Up to this many values are checked one by one (str methods), more in one pass over their text.
_FEW = 16


def _plain(value: object) -> bool:
    return (
        isinstance(value, str) and value.isascii() and value.isprintable()  # printable: no control, DEL
        and '"' not in value and "\\" not in value
    )  # fmt: skip


def quoted_cells(values: list[object], codes: np.ndarray) -> Cells | None:
    """Cells of a column whose distinct values are plain strings (every character printable ASCII
    but ``"`` and ``\\``), each JSON-quoted once; code ``len(values)`` is null. None when a value is
    not such a string: the caller encodes the values one by one."""
    if len(values) <= _FEW:
        if not all(map(_plain, values)):
            return None
        quoted = ('"' + '""'.join(values) + '"').encode("ascii") if values else b""  # type: ignore[arg-type]
        lengths = np.array([len(v) + 2 for v in values], dtype=np.int64)  # type: ignore[arg-type]
        ends = np.cumsum(lengths)
        starts = ends - lengths
    else:
        try:
            quoted = ('"' + '""'.join(values) + '"').encode("ascii")  # type: ignore[arg-type]
        except (TypeError, UnicodeEncodeError):
            return None
        raw = np.frombuffer(quoted, dtype=np.uint8)
        if ((raw - np.uint8(0x20)) >= 0x5F).any() or (raw == 0x5C).any():  # < 0x20 or >= 0x7F; a \\
            return None
        marks = np.flatnonzero(raw == 0x22)
        if marks.size != 2 * len(values):  # a quote inside a value
            return None
        starts, ends = marks[0::2], marks[1::2] + 1
    size = len(quoted)
    return Cells(TEXT, quoted + b"null", np.append(starts, size), np.append(ends, size + 4), codes)


def constant_cells(text: bytes, rows: int) -> Cells:
    """A column whose text is ``text`` in every row."""
    one = np.zeros(1, dtype=np.int64)
    return Cells(TEXT, text, one, one + len(text), np.zeros(rows, dtype=np.int64))


def null_cells(rows: int) -> Cells:
    """A column that is null in every row (e.g. a policy column the table lacks)."""
    return constant_cells(b"null", rows)


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
    return Cells(INT, b"", values, null)


# --------------------------------------------------------------------------- values by identity


def identities(values: np.ndarray, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(per-row codes, the row of each code's first use) of an object array, one code per distinct
    object (not per distinct value: equal values that are different objects get two codes, and are
    encoded twice, to the same text). ``ids``: the values' :func:`addresses`, if the caller has
    them."""
    if ids is None:
        values = np.ascontiguousarray(values)  # held here while its addresses are read
        ids = addresses(values)
    n = len(ids)
    codes = np.empty(n, dtype=np.int64)
    first = np.empty(max(n, 1), dtype=np.int64)
    count = identity_codes(ids, codes, first) if n else 0
    return codes, first[:count]


# ------------------------------------------------------------------------------------- assembly


def splice(src: np.ndarray, cuts: np.ndarray, width: int, sep: bytes) -> memoryview:
    """``src`` (bytes as uint8) with the ``width`` bytes at each of ``cuts`` replaced by ``sep``."""
    out = np.empty(src.size - len(cuts) * (width - len(sep)) + PAD, dtype=np.uint8)
    end = splice_kernel(src, cuts, width, _padded(sep), len(sep), out)
    return out[:end].data


_INT_MIN = b"-9223372036854775808"


def _padded(data: bytes) -> np.ndarray:
    return np.frombuffer(data + bytes(PAD), dtype=np.uint8)


def _constant(c: Cells) -> bytes | None:
    """The one text of a column that is the same in every row of the chunk, else None (checked
    for columns of one distinct value, null or not: a table's many constant columns)."""
    if c.kind == TEXT:
        if c.codes is None or len(c.a) > 2:
            return None
        k = c.codes[0]
        assert c.b is not None
        return None if (c.codes != k).any() else c.blob[c.a[k] : c.b[k]]
    if c.b is not None and c.b.any():
        return b"null" if c.b.all() else None
    return None if (c.a != c.a[0]).any() else str(int(c.a[0])).encode("ascii")


def category_parts(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(category objects then None, codes) of a Categorical column: ``cats[codes[rows]]`` is the
    rows' values as an object array of the categories' own objects (code -1, missing: None), made
    a chunk at a time instead of the whole column's."""
    cat = column.array  # its codes as they are: ``Series.cat.codes`` is a new Series, a copy of them
    names = cat.categories.tolist()
    cats = np.empty(len(names) + 1, dtype=object)  # the last entry, None: code -1's
    cats[: len(names)] = names
    return cats, np.asarray(cat.codes)


#: A column's cells for rows ``[start, stop)``, or None when the kernel cannot write them.
Reader = Callable[[int, int], "Cells | None"]


def read_cells(readers: Sequence[Reader], start: int, stop: int) -> list[Cells] | None:
    """Every column's cells of rows ``[start, stop)``, or None as soon as one column has none."""
    cells = []
    for read in readers:
        got = read(start, stop)
        if got is None:
            return None
        cells.append(got)
    return cells


def join_rows(
    keys: Sequence[str], cells: Sequence[Cells], sep: str, head: str = "{", tail: str = "}"
) -> np.ndarray:
    """``sep.join(head + key0 + cell0 + key1 + cell1 + ... + tail for each row)`` as ASCII bytes (a
    uint8 array); each key is the text before its cell (``'"a":'``, then ``',"b":'``; for CSV
    ``""``, then ``","``). A null cell of a nullable integer column is written ``null``.

    A column that is the same in every row of the chunk joins the text around it, so the kernel
    copies one literal for the run of keys and constant cells between two variable cells (a SYN
    scan's rows differ in a handful of their 45 columns)."""
    rows = len(cells[0]) if cells else 0
    if rows == 0:
        return np.zeros(0, dtype=np.uint8)
    lits: list[bytes] = []
    run = [head.encode("ascii")]
    variable: list[Cells] = []
    for key, c in zip(keys, cells, strict=True):
        run.append(key.encode("ascii"))
        text = _constant(c)
        if text is None:
            lits.append(b"".join(run))
            run = []
            variable.append(c)
        else:
            run.append(text)
    run.append(tail.encode("ascii"))
    lits.append(b"".join(run))
    texts = [c for c in variable if c.kind == TEXT]
    starts = np.empty(sum(len(c.a) for c in texts) + 1, dtype=np.int64)
    ends = np.empty_like(starts)
    kinds = np.empty(len(variable), dtype=np.uint8)
    cell = np.empty((len(variable), rows), dtype=np.int64)
    null = np.empty((len(variable), rows), dtype=np.bool_)
    base = first = size = 0
    for j, c in enumerate(variable):
        if c.kind == TEXT:
            assert c.b is not None
            n = len(c.a)
            np.add(c.a, base, out=starts[first : first + n])
            np.add(c.b, base, out=ends[first : first + n])
            if c.codes is None:
                cell[j] = np.arange(first, first + rows)
                size += int(c.b.sum() - c.a.sum())
            else:
                np.add(c.codes, first, out=cell[j])
                size += rows * int((c.b - c.a).max())
            base += len(c.blob)
            first += n
            kinds[j] = TEXT
        else:
            cell[j] = c.a
            size += rows * len(_INT_MIN)
            kinds[j] = INT if c.b is None else NULLABLE
            if c.b is not None:
                null[j] = c.b
    lit_bytes = b"".join(lits)
    lit_ends = np.cumsum([len(t) for t in lits], dtype=np.int64)
    sep_bytes = sep.encode("ascii")
    size += rows * (len(lit_bytes) + len(sep_bytes))
    out = np.empty(size + PAD, dtype=np.uint8)
    data = _padded(b"".join(c.blob for c in texts))
    end = assemble(
        data, starts, ends, kinds, cell, null, _padded(lit_bytes), lit_ends, _padded(sep_bytes),
        len(sep_bytes), _padded(_INT_MIN), out,
    )  # fmt: skip
    return out[:end]
