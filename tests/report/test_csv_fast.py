"""flows.csv by the row kernel and findings.csv joined by hand: the same bytes as pandas' ``to_csv``
and the csv module write, on hostile and odd values."""

from __future__ import annotations

import csv
import dataclasses
import io
import random

import numpy as np
import pandas as pd
import pytest

from helix_audit.report import csv_report
from helix_audit.report.common import display_text
from helix_audit.report.csv_report import (
    FINDING_FIELDS,
    FLOW_FIELDS,
    _csv_reader,
    _fast_chunk,
    finding_row,
    findings_csv,
    flows_csv,
    pandas_chunk,
)
from helix_audit.report.tabular import csv_line, csv_text, neutralise

from .factory import HOSTILE, make_result

ODD_TEXT: list[object] = [
    "plain",
    "",
    " leading space",
    "a,b",
    'say "hi"',
    '"',
    ",",
    '","',
    "line\nbreak",
    "cr\rreturn",
    "crlf\r\n",
    "=1+1",
    "+1",
    "-1",
    "@x",
    "\tx",
    "\rx",
    "=a,b",
    '-"q"',
    "ünïcødé",
    "emoji \U0001f600,",
    "zero\u200bwidth",
    "line\u2028sep",
    "nel\x85c1",
    "del\x7f",
    "nul\x00",
    "bad\udcffsurrogate",
    None,
    float("nan"),
    pd.NA,
    *HOSTILE.values(),
]
ODD_FLOATS = [
    0.0, -0.0, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 0.1 + 0.2, 5e-324, 1.7976931348623157e308,
    float("inf"), float("-inf"), float("nan"), 1764245000.123456, 2.0**53 + 2, -1.5, 123456789.12345679,
]  # fmt: skip


def _pandas_csv(flows: pd.DataFrame) -> bytes:
    """The reference: every chunk through pandas."""
    starts = range(0, max(len(flows), 1), csv_report.CSV_CHUNK)
    return b"".join(
        pandas_chunk(flows, s, min(s + csv_report.CSV_CHUNK, len(flows))).encode("utf-8") for s in starts
    )


def _odd_flows(rows: int, seed: int = 7) -> pd.DataFrame:
    base = make_result(hostile=True).flows
    flows = pd.concat([base] * (rows // len(base) + 1), ignore_index=True).iloc[:rows].copy()
    rng = random.Random(seed)
    flows["hostname"] = pd.Series([rng.choice(ODD_TEXT) for _ in range(rows)], dtype=object)
    flows["history"] = pd.Series([rng.choice(ODD_TEXT) for _ in range(rows)], dtype=object).astype("str")
    flows["encap"] = pd.Series(["a,b" if i % 3 else None for i in range(rows)], dtype=object)
    flows["first_ts"] = [rng.choice(ODD_FLOATS) for _ in range(rows)]
    flows["duration"] = [rng.choice([0.0, -0.0, float("nan"), 2.5]) for _ in range(rows)]  # few values
    flows["last_ts"] = np.random.default_rng(seed).integers(0, 2**63, rows, dtype=np.int64).view(np.float64)
    flows["icmp_errors"] = np.float32(1 / 3)
    flows["orig_p"] = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0, 7] * rows)[:rows]
    flows["resp_p"] = np.array([2**64 - 1, 0, 5] * rows, dtype=np.uint64)[:rows]
    flows["vlan"] = np.arange(rows, dtype=np.int32)
    flows["syn"] = np.arange(rows) % 3 == 0
    flows["tcp_stream"] = pd.array([None if i % 4 == 0 else -(2**63) + i for i in range(rows)], dtype="Int64")
    flows["udp_stream"] = pd.array([None if i % 3 == 0 else i - 5 for i in range(rows)], dtype="Int32")
    flows["resp_pkts"] = np.array([np.iinfo(np.int32).min, -1, 0, np.iinfo(np.int32).max] * rows, np.int32)[
        :rows
    ]
    # the finished frame's Categoricals: odd texts (not a lone surrogate: pandas' reindex hashes
    # categories), missing values, unused categories
    texts = [t for t in ODD_TEXT if isinstance(t, str) and "\udcff" not in t]
    flows["conn_state"] = pd.Categorical(
        [rng.choice([*texts, None]) for _ in range(rows)], categories=sorted({*texts, "unused"})
    )
    flows["file"] = pd.Categorical(["a.pcap"] * rows)
    return flows


def _fast_taken(flows: pd.DataFrame) -> bool:
    readers = [_csv_reader(flows, c) for c in FLOW_FIELDS]
    return _fast_chunk(readers, 0, len(flows)) is not None


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096])
def test_fast_path_equals_pandas_on_odd_values(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(csv_report, "CSV_CHUNK", chunk)
    flows = _odd_flows(300)
    assert _fast_taken(flows)
    result = make_result(hostile=True)
    result.flows = flows
    assert flows_csv(result).encode("utf-8") == _pandas_csv(flows)


def test_constant_and_missing_columns_fold_into_the_row_text() -> None:
    flows = _odd_flows(200).drop(columns=["rule", "verdict"])  # missing: reindexed, empty
    flows["hostname"] = "a,b"
    flows["first_ts"] = -0.0
    flows["duration"] = float("nan")
    flows["tcp_stream"] = pd.array([None] * len(flows), dtype="Int64")
    flows["orig_p"] = 443
    assert _fast_taken(flows)
    result = make_result()
    result.flows = flows
    assert flows_csv(result).encode("utf-8") == _pandas_csv(flows)


@pytest.mark.parametrize(
    "column, values",
    [
        ("hostname", [("a", "b"), 1, "x"]),  # objects that are not text
        ("hostname", [1.5, "x", None]),
        ("hostname", [True, "x", None]),
        ("first_ts", pd.to_datetime([0, 1, 2], unit="s")),
        ("flow_id", pd.array([1, None, 3], dtype="UInt64")),
    ],
)
def test_unusual_columns_take_the_pandas_path(column: str, values: object) -> None:
    flows = _odd_flows(3)
    flows[column] = pd.Series(values, dtype=object) if isinstance(values, list) else values
    assert not _fast_taken(flows)
    result = make_result()
    result.flows = flows
    assert flows_csv(result).encode("utf-8") == _pandas_csv(flows)


def test_random_text_equals_pandas() -> None:
    rng = random.Random(11)
    alphabet = 'ab,"\r\n\t=+-@ \x00\x1b\x7f\x85é\u2028\U0001f600\udcff'
    flows = _odd_flows(500)
    flows["hostname"] = pd.Series(
        ["".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(len(flows))],
        dtype=object,
    )
    result = make_result()
    result.flows = flows
    assert _fast_taken(flows)
    assert flows_csv(result).encode("utf-8") == _pandas_csv(flows)


@pytest.mark.parametrize("value", [v for v in ODD_TEXT if isinstance(v, str)])
def test_csv_text_is_the_csv_modules_cell(value: str) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([neutralise(value), "next"])
    assert csv_text(value) + ",next\r\n" == buf.getvalue()


@pytest.mark.parametrize("value", [v for v in ODD_TEXT if isinstance(v, str)])
def test_neutralise_shortcut_is_display_text(value: str) -> None:
    prefixed = "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value
    assert neutralise(value) == display_text(prefixed)


def _writer_csv(rows: list[list[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize(
    "row",
    [
        [v for v in ODD_TEXT if isinstance(v, str)],
        ["a", 0, -1, 2**70, -(2**63), "", "x,y"],
        [""],  # the csv module quotes a lone empty cell
        ["only"],
        [True, "x"],  # a bool: the csv module's
        [1.5, "x"],  # a float: repr, by the csv module
        [None, "x"],
    ],
)
def test_csv_line_is_the_csv_modules_row(row: list[object]) -> None:
    line = csv_line(row)
    if line is not None:
        assert line == _writer_csv([row])
    else:
        assert any(type(v) not in (str, int) for v in row) or row == [""]


def test_findings_csv_equals_the_csv_module() -> None:
    result = make_result(hostile=True)
    expected = _writer_csv([list(FINDING_FIELDS)] + [finding_row(f) for f in result.findings])
    assert findings_csv(result) == expected
    result.findings[0] = dataclasses.replace(result.findings[0], src_port=1.5)  # type: ignore[arg-type]
    expected = _writer_csv([list(FINDING_FIELDS)] + [finding_row(f) for f in result.findings])
    assert findings_csv(result) == expected
