"""flows.csv and findings.csv: parse back, and nothing a spreadsheet would evaluate."""

from __future__ import annotations

import csv
import io

import pytest

from helix_audit.report.csv_report import FINDING_FIELDS, findings_csv, flows_csv, neutralise
from helix_audit.report.json_report import FLOW_FIELDS

from .factory import HOSTILE, make_result


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\\x09x"),
        ("\rx", "'\\x0dx"),
        ("a=b", "a=b"),
        ("bell\x07", "bell\\x07"),
        ("ok.example", "ok.example"),
    ],
)
def test_neutralise(raw: str, safe: str) -> None:
    assert neutralise(raw) == safe


def _dangerous(cell: str) -> bool:
    return cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_findings_csv_is_inert_and_complete() -> None:
    result = make_result(hostile=True)
    parsed = rows(findings_csv(result))
    assert len(parsed) == len(result.findings)
    assert list(parsed[0]) == list(FINDING_FIELDS)
    cells = [c for r in parsed for c in r.values()]
    assert not [c for c in cells if _dangerous(c)]
    assert not [c for c in cells if any(ord(ch) < 32 for ch in c)]
    by_id = {r["id"]: r for r in parsed}
    assert by_id["F0002"]["hostname"] == "'" + HOSTILE["formula"]
    assert by_id["F0004"]["hostname"] == "'" + HOSTILE["plus"]
    assert by_id["F0001"]["hostname"] == HOSTILE["script"]  # markup is text in CSV, left as is
    assert by_id["F0013"]["hostname"] == "bell\\x07esc\\x1b[31mred\\x0d\\x0anewline\\x00nul.example"
    assert (
        by_id["F0001"]["frames"] == "captures/span-1.pcapng:31 captures/span-1.pcapng:32 "
        "captures/span-1.pcapng:35"
    )


def test_flows_csv_is_inert_and_numbers_stay_numbers() -> None:
    result = make_result(hostile=True)
    result.flows.loc[2, "orig_p"] = -1  # a number, even negative, is not a formula
    parsed = rows(flows_csv(result))
    assert len(parsed) == len(result.flows)
    assert list(parsed[0]) == list(FLOW_FIELDS)
    assert parsed[2]["orig_p"] == "-1"
    text_cells = [c for r in parsed for k, c in r.items() if k != "orig_p"]
    assert not [c for c in text_cells if _dangerous(c)]
    names = {r["flow_id"]: r["hostname"] for r in parsed}
    assert names["13"] == "'" + HOSTILE["minus"] and names["6"] == "'" + HOSTILE["at"]
    assert names["1"] == "bad\\udcffbyte.example"
    assert names["3"] == HOSTILE["script"]
    assert parsed[1]["tcp_stream"] == "" and parsed[1]["udp_stream"] == "1"
