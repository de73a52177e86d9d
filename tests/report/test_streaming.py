"""Formats written in pieces (bounded memory) give exactly the text written in one piece."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helix_audit import heap
from helix_audit.report import csv_report, evidence_plan, sarif
from helix_audit.report.bundle import write_bundle

from .factory import make_result


@pytest.mark.parametrize("kw", [{}, {"hostile": True}, {"empty": True}, {"bulk": 40}])
def test_sarif_pieces_are_the_document(kw: dict) -> None:
    result = make_result(**kw)
    whole = json.dumps(sarif.to_sarif(result), indent=1, ensure_ascii=True, allow_nan=False) + "\n"
    assert "".join(sarif.sarif_chunks(result)) == whole == sarif.render_sarif(result)


def test_sarif_file_is_the_document(tmp_path: Path) -> None:
    result = make_result(hostile=True)
    path = sarif.write_sarif(result, tmp_path / "report.sarif")
    assert path.read_text() == sarif.render_sarif(result)


@pytest.mark.parametrize("chunk", [1, 3, 7, 10_000])
def test_flows_csv_in_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    result = make_result(hostile=True, bulk=25)
    monkeypatch.setattr(csv_report, "CSV_CHUNK", 1 << 30)
    whole = csv_report.flows_csv(result)
    monkeypatch.setattr(csv_report, "CSV_CHUNK", chunk)
    assert csv_report.flows_csv(result) == whole
    assert whole.count("\r\n") == len(result.flows) + 1


def test_flows_csv_of_no_flows_is_the_header(tmp_path: Path) -> None:
    result = make_result(empty=True)
    csv_report.write_csvs(result, tmp_path)
    head = (tmp_path / "flows.csv").read_bytes().decode()
    assert head.count("\r\n") == 1
    assert head.rstrip("\r\n").split(",") == list(csv_report.FLOW_FIELDS)


def test_evidence_plan_in_row_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    result = make_result(bulk=30)
    inputs = [Path(i.path) for i in result.inputs]
    whole = evidence_plan.plan(result.findings, result.flows, inputs)
    monkeypatch.setattr(evidence_plan, "ROW_CHUNK", 2)
    chunked = evidence_plan.plan(result.findings, result.flows, inputs)
    assert whole.keys() == chunked.keys() and whole
    for i, sel in whole.items():
        for name in sel.__dataclass_fields__:
            assert np.array_equal(getattr(sel, name), getattr(chunked[i], name)), name


def test_trim_without_bound_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_bound", {})
    assert heap.trim() is False


def test_bundle_trims_between_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr("helix_audit.report.bundle.trim", lambda: calls.append(1) or True)
    write_bundle(make_result(), tmp_path, formats=["json", "csv", "sarif"])
    assert len(calls) == 3
