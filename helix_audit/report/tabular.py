"""CSV cells and rows: neutralised text, and rows assembled from column-wise cells by the row kernel.

CSV cells are neutralised against spreadsheet formula injection (a leading ``= + - @``, tab or CR
gets a ``'`` prefix) and control characters are escaped, because names in packets are
attacker-controlled. Rows out of observations (``helix-audit extract``) go through the csv module;
flows.csv's rows through :mod:`.rowtext`'s kernel from cells holding each cell's CSV text exactly as
pandas' ``to_csv`` and the csv module write it (see :func:`csv_rows`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, cast

import numpy as np

from ..model import Observation
from .common import display_text
from .rowkernel import TEXT
from .rowtext import Cells, constant_cells, join_rows

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Columns every observation row has, first and in this order.
HEAD = ["type", "frame", "ts", "src", "sport", "dst", "dport", "transport", "file", "flow_id"]


def observation_rows(observations: Iterable[Observation], types: set[str]) -> Iterator[dict[str, Any]]:
    """One flat dict per observation (``Observation.to_record``), filtered by type when given."""
    for obs in observations:
        if types and obs.type not in types:
            continue
        yield obs.to_record()


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """One JSON object per line; non-ASCII escaped so control characters cannot reach a terminal."""
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=True, separators=(",", ":")) + "\n")
        n += 1
    return n


def safe_cell(value: Any) -> str:
    """A CSV cell that no spreadsheet evaluates and no terminal interprets."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return neutralise(json.dumps(value, ensure_ascii=True, separators=(",", ":")))
    return neutralise(str(value))


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """CSV with the common head first, then every other field seen (so rows are buffered)."""
    buffered = list(rows)
    extra: list[str] = []
    for row in buffered:
        extra += [k for k in row if k not in HEAD and k not in extra]
    writer = csv.writer(out)
    writer.writerow(HEAD + extra)
    for row in buffered:
        writer.writerow([safe_cell(row.get(k)) for k in HEAD + extra])
    return len(buffered)


# ---------------------------------------------------------------- cells of flows.csv


def neutralise(value: str) -> str:
    """Spreadsheet-safe text: formula prefixes quoted (checked before escaping), controls escaped."""
    quoted = "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if quoted.isascii() and quoted.isprintable():  # printable ASCII: nothing display_text escapes
        return quoted
    return display_text(quoted)


_QUOTE = re.compile('[,"\r\n]')


def csv_text(value: str) -> str:
    """A text cell of flows.csv: neutralised, then quoted as the csv module does (QUOTE_MINIMAL)."""
    safe = neutralise(value)
    return '"' + safe.replace('"', '""') + '"' if _QUOTE.search(safe) else safe


def utf8_cells(texts: list[str], codes: np.ndarray) -> Cells:
    """Cells of the ``texts`` (row i's is ``texts[codes[i]]``), UTF-8: encoded in one piece when
    ASCII (a character a byte), else one by one."""
    joined = "".join(texts)
    if joined.isascii():
        blob = joined.encode("ascii")
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    else:
        parts = [t.encode("utf-8") for t in texts]
        blob = b"".join(parts)
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    ends = np.cumsum(lengths)
    return Cells(TEXT, blob, ends - lengths, ends, codes)


_FORMULA_STARTS = ("\n=", "\n+", "\n-", "\n@")  # a value's start in "\n" + the joined values


def plain_texts(uniques: list[object]) -> list[str] | None:
    """The cells of strings of printable ASCII with no ``"`` and no formula prefix (most cells), in
    a few passes over their joined text instead of a neutralise per string; None for any other."""
    try:
        joined = "\n".join(uniques)  # type: ignore[arg-type]
    except TypeError:  # None, NaN or another object
        return None
    if not joined.isascii() or '"' in joined:
        return None
    lines = "\n" + joined
    if any(start in lines for start in _FORMULA_STARTS):
        return None
    if joined.count("\n") != len(uniques) - 1 or not joined.replace("\n", " ").isprintable():
        return None
    strings = cast("list[str]", uniques)  # the join took nothing else
    return strings if "," not in joined else ['"' + u + '"' if "," in u else u for u in strings]


def fixed_cells(text: np.ndarray, missing: np.ndarray | None) -> Cells:
    """Cells of a fixed-width bytes array (``S`` dtype, NUL-padded ASCII), missing rows empty; one
    text when every row has the same (a table's many constant columns fold into literals)."""
    rows = len(text)
    if missing is not None and not missing.any():
        missing = None
    if missing is None and rows and not (text != text[0]).any():
        return constant_cells(bytes(text[0]), rows)
    if missing is not None and missing.all():
        return constant_cells(b"", rows)
    width = text.dtype.itemsize
    starts = np.arange(rows, dtype=np.int64) * width
    ends = starts + np.char.str_len(text)
    if missing is not None:
        ends[missing] = starts[missing]
    return Cells(TEXT, text.tobytes(), starts, ends, np.arange(rows, dtype=np.int64))


def float_cells(values: np.ndarray) -> Cells:
    """numpy's text of each float (~1 µs a value), NaN empty; a column of few values is formatted
    once per distinct bit pattern (so ``-0.0`` stays apart from ``0.0``)."""
    if len(values) > 64:
        bits = np.ascontiguousarray(values).view(f"i{values.dtype.itemsize}")
        distinct, codes = np.unique(bits, return_inverse=True)
        if len(distinct) * 4 < len(values):
            floats = distinct.view(values.dtype)
            texts = floats.astype(str).tolist()
            texts = ["" if nan else t for t, nan in zip(texts, np.isnan(floats).tolist(), strict=True)]
            return utf8_cells(texts, codes.reshape(-1).astype(np.int64))
    return fixed_cells(values.astype(str).astype("S"), np.isnan(values))


def bool_cells(values: np.ndarray) -> Cells:
    return Cells(TEXT, b"FalseTrue", np.array([0, 5]), np.array([5, 9]), values.astype(np.int64))


def csv_rows(cells: list[Cells]) -> bytes:
    """The rows ``cell0,cell1,...\r\n`` as bytes (:func:`.rowtext.join_rows`: a column that is the
    same in every row is folded into the literal text around its neighbours)."""
    keys = ["", *[","] * (len(cells) - 1)]
    return join_rows(keys, cells, "", head="", tail="\r\n").tobytes()


def csv_line(row: list[Any]) -> str | None:
    """``row`` as the csv module writes it (QUOTE_MINIMAL, ``\\r\\n``) if every cell is a str or an
    int (not a bool), else None."""
    cells = []
    for v in row:
        kind = type(v)
        if kind is str:
            if '"' in v:
                v = '"' + v.replace('"', '""') + '"'
            elif "," in v or "\n" in v or "\r" in v:
                v = '"' + v + '"'
        elif kind is int:
            v = str(v)
        else:
            return None
        cells.append(v)
    if len(cells) == 1 and not cells[0]:
        return None  # the csv module quotes a lone empty cell
    return ",".join(cells) + "\r\n"
