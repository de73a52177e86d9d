"""flows.csv and findings.csv, safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with ``'`` so
Excel, LibreOffice and Google Sheets show it as text instead of evaluating a formula (OWASP "CSV
injection"); control characters are escaped as ``\\xNN``. Only text cells are touched: numbers
(negative ones too) stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helix_audit.arrays import addresses, stored_objects
from helix_audit.flows.blob import TextBlobArray
from helix_audit.model import AuditResult, Finding, Severity
from helix_audit.report.atomic import atomic_write_chunks, atomic_write_text
from helix_audit.report.common import iso_time
from helix_audit.report.json_report import FLOW_FIELDS
from helix_audit.report.rowtext import (
    Cells,
    Reader,
    category_parts,
    constant_cells,
    identities,
    int_cells,
    read_cells,
)
from helix_audit.report.tabular import (
    bool_cells,
    csv_line,
    csv_rows,
    csv_text,
    fixed_cells,
    float_cells,
    neutralise,
    plain_texts,
    utf8_cells,
)

CSV_CHUNK = 4096  # flow rows neutralised and written at a time
FINDING_FIELDS: tuple[str, ...] = (
    "id",
    "kind",
    "severity",
    "component",
    "src",
    "src_port",
    "dst",
    "dst_port",
    "transport",
    "hostname",
    "how",
    "state",
    "rule",
    "message",
    "sources",
    "flow_ids",
    "file",
    "frames",
    "first_time",
    "last_time",
    "wireshark_filter",
    "explanation",
)


def _neutralise_column(column: pd.Series) -> pd.Series:
    """Neutralise a text column once per distinct value (flow columns repeat few values)."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    safe = np.array([neutralise(u) if isinstance(u, str) else u for u in uniques] + [None], dtype=object)
    return pd.Series(safe[codes], index=column.index, dtype=object)


def flows_csv(result: AuditResult) -> str:
    return b"".join(flows_csv_chunks(result)).decode("utf-8")


def flows_csv_chunks(result: AuditResult) -> Iterator[bytes]:
    """flows.csv (UTF-8) in pieces of ``CSV_CHUNK`` rows: the kernel's rows (:func:`_fast_chunk`)
    where every column is of a kind it knows, else pandas' (:func:`pandas_chunk`), to the same
    bytes. The neutralised copy of the whole flow table and its text were ~70 MiB of the bundle's
    peak RSS on the benchmark's 60k flows: a chunk at a time keeps them small."""
    flows = result.flows
    readers = [_csv_reader(flows, c) for c in FLOW_FIELDS]
    for start in range(0, max(len(flows), 1), CSV_CHUNK):
        stop = min(start + CSV_CHUNK, len(flows))
        head = _header() if start == 0 else b""
        fast = _fast_chunk(readers, start, stop) if stop > start else b""
        yield head + fast if fast is not None else pandas_chunk(flows, start, stop).encode("utf-8")


def pandas_chunk(flows: pd.DataFrame, start: int, stop: int) -> str:
    """Rows ``[start, stop)`` of flows.csv by pandas (the header too for the first): the reference
    the kernel's rows must equal, and the path for columns it does not know."""
    frame = flows.iloc[start:stop].reindex(columns=list(FLOW_FIELDS))
    safe = pd.DataFrame({c: _neutralise_column(frame[c]) for c in frame.columns}, columns=frame.columns)
    return safe.to_csv(index=False, header=start == 0, lineterminator="\r\n")


def _header() -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(FLOW_FIELDS)
    return buf.getvalue().encode("utf-8")


# ------------------------------------------------------------------ flows.csv by the row kernel
# Cells as :mod:`.rowtext` takes them (a byte blob, offsets, codes), holding each cell's CSV text
# as pandas' ``to_csv`` writes it: integers by the kernel (``str``), floats and nullable integers as
# numpy's ``astype(str)`` (what pandas calls), booleans ``True``/``False``, text neutralised and
# quoted like the csv module's QUOTE_MINIMAL (a ``,``, ``"``, CR or LF: quoted, ``"`` doubled), once
# per distinct object; missing values empty. Anything else (a non-text object, a category, dates)
# makes the reader give None and the chunk goes through pandas.


def _object_cells(values: np.ndarray, ids: np.ndarray | None) -> Cells | None:
    """Each distinct object (by identity, :func:`.rowtext.identities`) neutralised and quoted once;
    None, NaN and NA empty; None for any other object."""
    codes, first = identities(values, ids)
    uniques = values[first].tolist()
    plain = plain_texts(uniques)
    if plain is not None:
        return utf8_cells(plain, codes)
    texts = []
    for u in uniques:
        if isinstance(u, str):
            texts.append(csv_text(u))
        elif u is None or u is pd.NA or (isinstance(u, float) and u != u):
            texts.append("")
        else:
            return None
    return utf8_cells(texts, codes)


def _string_view(column: pd.Series) -> np.ndarray | None:
    """The objects an object or python-string column stores (the same objects, for identity codes:
    a contiguous copy of the pointers if strided), else None (other arrays make new objects)."""
    values = stored_objects(column.array)
    return np.ascontiguousarray(values) if values is not None else None


def _csv_reader(flows: pd.DataFrame, name: str) -> Reader:
    """The CSV cells of rows ``[start, stop)`` of one column; the column is looked up once."""
    if name not in flows.columns:  # reindexed by pandas: all NaN, written empty
        return lambda start, stop: constant_cells(b"", stop - start)
    column = flows[name]
    dtype = column.dtype
    kind = getattr(dtype, "kind", "")
    if isinstance(dtype, np.dtype) and kind in "iufb":
        values = column.to_numpy()
        if kind == "b":
            return lambda start, stop: bool_cells(values[start:stop])
        if kind == "f":
            return lambda start, stop: float_cells(values[start:stop])
        if kind == "i" or dtype.itemsize < 8:
            return lambda start, stop: int_cells(values[start:stop].astype(np.int64))
        return lambda start, stop: fixed_cells(values[start:stop].astype("S"), None)
    if isinstance(dtype, pd.Int64Dtype | pd.Int32Dtype | pd.Int16Dtype | pd.Int8Dtype):
        array = column.array
        return lambda start, stop: fixed_cells(
            array[start:stop].to_numpy(dtype=np.int64, na_value=0).astype("S"), array[start:stop].isna()
        )
    if isinstance(dtype, pd.CategoricalDtype):
        cats, codes = category_parts(column)
        return lambda start, stop: _object_cells(cats[codes[start:stop]], None)
    if isinstance(column.array, TextBlobArray):  # key_frames: a chunk's strs made when written
        blob = column.array
        return lambda start, stop: _object_cells(blob[start:stop].to_numpy(), None)
    whole = _string_view(column)
    if whole is None:
        return lambda start, stop: None
    ids = addresses(whole)  # a view: valid while ``whole``, held by the closure, lives
    return lambda start, stop: _object_cells(whole[start:stop], ids[start:stop])


def _fast_chunk(readers: list[Reader], start: int, stop: int) -> bytes | None:
    """Rows ``[start, stop)`` of flows.csv by the kernel, or None if a column needs pandas."""
    cells = read_cells(readers, start, stop)
    return None if cells is None else csv_rows(cells)


def finding_row(f: Finding) -> list[Any]:
    frames = [f"{e.file}:{n}" for e in f.evidence for n in e.frames]
    first = min((e.first_ts for e in f.evidence), default=None)
    last = max((e.last_ts for e in f.evidence), default=None)
    values: list[Any] = [
        f.id,
        f.kind,
        Severity(f.severity).value,
        f.component,
        f.src,
        f.src_port,
        f.dst,
        f.dst_port,
        f.transport,
        f.hostname,
        f.how,
        f.state,
        f.rule,
        f.message,
        " ".join(f.sources),
        " ".join(str(i) for i in f.flow_ids),
        " ".join(sorted({e.file for e in f.evidence})),
        " ".join(frames),
        iso_time(first),
        iso_time(last),
        " || ".join(e.wireshark_filter for e in f.evidence if e.wireshark_filter),
        f.explanation,
    ]
    return ["" if v is None else neutralise(v) if isinstance(v, str) else v for v in values]


def findings_csv(result: AuditResult) -> str:
    """findings.csv: rows of text and integer cells joined here, as the csv module writes them (its
    writer looks at every character: ~40% of the time on the benchmark's 8k findings, whose cells
    are long), any other row by the csv module."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(FINDING_FIELDS)
    lines: list[str] = []
    for f in result.findings:
        row = finding_row(f)
        line = csv_line(row)
        if line is None:
            buf.write("".join(lines))
            lines.clear()
            writer.writerow(row)
        else:
            lines.append(line)
    buf.write("".join(lines))
    return buf.getvalue()


def write_csvs(
    result: AuditResult, out_dir: str | Path, digests: dict[Path, str] | None = None
) -> list[Path]:
    """Write flows.csv and findings.csv atomically into ``out_dir``. ``digests`` gets flows.csv's
    SHA-256, taken as it is written (as ``write_json`` does for report.json)."""
    out = Path(out_dir)
    flows, digest = atomic_write_chunks(out / "flows.csv", flows_csv_chunks(result))
    if digests is not None:
        digests[flows] = digest
    return [flows, atomic_write_text(out / "findings.csv", findings_csv(result), newline="")]
