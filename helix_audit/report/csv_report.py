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

from helix_audit.model import AuditResult, Finding, Severity
from helix_audit.report.atomic import atomic_open, atomic_write_text
from helix_audit.report.common import display_text, iso_time
from helix_audit.report.json_report import FLOW_FIELDS

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
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


def neutralise(value: str) -> str:
    """Spreadsheet-safe text: formula prefixes quoted (checked before escaping), controls escaped."""
    quoted = "'" + value if value.startswith(FORMULA_PREFIXES) else value
    return display_text(quoted)


def _neutralise_column(column: pd.Series) -> pd.Series:
    """Neutralise a text column once per distinct value (flow columns repeat few values)."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    safe = np.array([neutralise(u) if isinstance(u, str) else u for u in uniques] + [None], dtype=object)
    return pd.Series(safe[codes], index=column.index, dtype=object)


def flows_csv(result: AuditResult) -> str:
    return "".join(flows_csv_chunks(result))


def flows_csv_chunks(result: AuditResult) -> Iterator[str]:
    """flows.csv in pieces of ``CSV_CHUNK`` rows (pandas writes each value on its own, so the pieces
    are the whole file's text): the neutralised copy of the whole flow table and its text were
    ~70 MiB of the bundle's peak RSS on the benchmark's 60k flows."""
    flows = result.flows
    for start in range(0, max(len(flows), 1), CSV_CHUNK):
        frame = flows.iloc[start : start + CSV_CHUNK].reindex(columns=list(FLOW_FIELDS))
        safe = pd.DataFrame({c: _neutralise_column(frame[c]) for c in frame.columns}, columns=frame.columns)
        yield safe.to_csv(index=False, header=start == 0, lineterminator="\r\n")


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
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(FINDING_FIELDS)
    writer.writerows(finding_row(f) for f in result.findings)
    return buf.getvalue()


def write_csvs(result: AuditResult, out_dir: str | Path) -> list[Path]:
    """Write flows.csv and findings.csv atomically into ``out_dir``."""
    out = Path(out_dir)
    with atomic_open(out / "flows.csv", "w", newline="") as fh:
        for piece in flows_csv_chunks(result):
            fh.write(piece)
    return [
        out / "flows.csv",
        atomic_write_text(out / "findings.csv", findings_csv(result), newline=""),
    ]
