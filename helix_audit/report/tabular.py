"""Rows out of observations, written as JSON lines or CSV (``helix-audit extract``).

CSV cells are neutralised against spreadsheet formula injection (a leading ``= + - @``, tab or CR
gets a ``'`` prefix) and control characters are escaped, because names in packets are
attacker-controlled.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from ..model import Observation
from .csv_report import neutralise

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
